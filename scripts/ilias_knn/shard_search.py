"""Search one database shard (an HDF5 feature file) for the exact top-k of every query.

The steps: open the shard and check it against the queries (``open_shard``),
stream its rows in blocks, each read, decoded and prepared (``prepared_blocks``;
one block ahead in a thread where the job has a core for it: ``reads_ahead``),
score every block into one TopK (``scan``), then read the ids of the rows that
made it (``search_shard``).
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np

from . import features
from .adapter import check_adapter_dim
from .arrays import sorted_unique
from .block_reader import ReadError, block_reader
from .errors import InputError
from .scoring import Fp32Scorer, NonFiniteBlock
from .selection import selection_mask
from .topk import TopK

log = logging.getLogger(__name__)

# Score block budget: queries x block rows x 4 bytes stays near this, so a
# shard job's memory is set by the query count, never by the shard's rows.
SCORE_BLOCK_BYTES = 32 << 20
MIN_BLOCK_ROWS, MAX_BLOCK_ROWS = 1024, 65536


@dataclass
class ShardResult:
    scores: np.ndarray  # nq x m float32, rows sorted by descending score
    rows: np.ndarray  # nq x m int64, row numbers within the shard file
    id_rows: np.ndarray  # sorted unique rows appearing in ``rows``
    ids: np.ndarray  # ids of ``id_rows`` (ascii bytes)
    rows_total: int
    rows_kept: int
    stats: dict = field(default_factory=dict)
    selected_matched: np.ndarray | None = None  # which selected ids matched a row here


@dataclass
class Shard:
    path: str
    handle: object  # open h5py.File
    info: features.FeatureInfo


def block_rows_for_queries(num_queries):
    rows = SCORE_BLOCK_BYTES // (4 * max(1, num_queries))
    return int(min(MAX_BLOCK_ROWS, max(MIN_BLOCK_ROWS, rows)))


@contextmanager
def open_shard(path, query_dim, adapter=None, adapter_path=None):
    """The open shard, once its header, ids and dimension are known to be good."""
    with features.open_feature_file(path) as handle:
        info = features.check_header(handle, path)
        features.check_ids_ascii(handle, path)
        db_dim = info.dim
        if adapter is not None:
            check_adapter_dim(adapter, info.dim, adapter_path, path)
            db_dim = adapter.out_dim
        features.check_database_dim(path, db_dim, query_dim)
        yield Shard(str(path), handle, info)


def reads_ahead(device, threads):
    """Whether a shard job reads its next block in a thread while it scores:
    only with a core to spare for it (a GPU scores, or the job has more than
    one thread). A one-thread job has one core (SLURM's cpus-per-task, or
    --cores N shared by N jobs): a reading thread there only takes turns with
    the GEMM (no faster end to end: bench/README.md) and has the job use more
    than the core it asked for."""
    return device != "cpu" or threads > 1


def prefetched(items, load):
    """``load(item)`` for each item, computed one item ahead in a thread."""
    items = list(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = pool.submit(load, items[0]) if items else None
        for i in range(len(items)):
            current = pending.result()
            # the caller is done with item i - 1, whose buffers item i + 1 reuses
            pending = pool.submit(load, items[i + 1]) if i + 1 < len(items) else None
            yield current


def prepared_blocks(shard, scorer, block_rows, selected_ids=None, decode_threads=1, read_ahead=True, found=None):
    """(first row, prepared block, database positions of its kept rows) over
    the shard, in row order; each prepared one block ahead in a thread when
    ``read_ahead``. ``found`` (a ScanFindings) collects the kept rows of zero
    norm and the selected ids that matched."""
    found = found or ScanFindings(selected_ids)
    info, dataset = shard.info, shard.handle["features"]
    times = scorer.times
    with times("open"):  # (the decoder is checked against h5py on the first rows)
        reader = block_reader(shard.path, dataset, threads=decode_threads)
    log.info("%s: %d rows in blocks of %d, read by %s", shard.path, info.rows, block_rows, reader.name)
    raw = np.empty((block_rows, info.dim), dtype=dataset.dtype)
    index = shard.handle["index"]

    def load(start):
        """(first row, prepared rows, their database positions)."""
        stop = min(start + block_rows, info.rows)
        block = raw[: stop - start]
        with times("read"):
            try:
                reader.read(start, stop, block)
            except ReadError as exc:  # a file cut short or damaged after its header
                raise features.corrupt_error(shard.path, f"rows {start}-{stop}", exc) from exc
        keep = None
        if selected_ids is not None:
            with times("selection"):
                keep = selection_mask(
                    features.decode_ids(index[start:stop], shard.path), selected_ids, found.selected_matched
                )
        positions = np.arange(start, stop, dtype=np.int64)
        if keep is not None:
            positions = positions[keep]
        zero = features.zero_rows(block)
        if zero.size:
            found.add_zero_rows(np.intersect1d(zero + start, positions))
        with times("prepare"):
            return start, scorer.prepare(block, keep), positions

    starts = range(0, info.rows, block_rows)
    try:
        yield from prefetched(starts, load) if read_ahead else map(load, starts)
    finally:
        reader.close()


class ScanFindings:
    """What a scan notices besides scores: kept rows of zero norm (a failed
    extraction scores 0 against everything), and which selected ids matched."""

    def __init__(self, selected_ids=None):
        self.zero_rows, self.first_zero_rows = 0, []
        self.selected_matched = None if selected_ids is None else np.zeros(len(selected_ids), bool)

    def add_zero_rows(self, rows):
        self.zero_rows += rows.size
        self.first_zero_rows += rows[: max(0, 5 - len(self.first_zero_rows))].tolist()


def scan(shard, scorer, topk, block_rows, selected_ids=None, decode_threads=1, read_ahead=True, found=None):
    """Score every block of the shard into ``topk``; the number of rows kept."""
    kept = 0
    report_every = max(1, shard.info.rows // 10)
    next_report = report_every
    blocks = prepared_blocks(shard, scorer, block_rows, selected_ids, decode_threads, read_ahead, found)
    try:
        while True:
            with scorer.times("wait") if read_ahead else nullcontext():  # for the reading thread
                item = next(blocks, None)
            if item is None:
                return kept
            start, prepared, positions = item
            kept += positions.size
            if positions.size:
                scorer.score(prepared, positions, topk)
            if start + block_rows >= next_report:
                log.info(
                    "%s: %d/%d rows searched", shard.path, min(start + block_rows, shard.info.rows), shard.info.rows
                )
                next_report += report_every
    except NonFiniteBlock:
        blocks.close()
        raise_nonfinite(shard, block_rows)


def search_shard(
    queries,
    shard_path,
    k,
    scorer=None,
    adapter=None,
    adapter_path=None,
    selected_ids=None,
    block_rows=None,
    decode_threads=1,
    read_ahead=True,
):
    """Exact top-k of ``queries`` (nq x d float32, adapted) in one feature file,
    scored by ``scorer`` (scoring.py, which applies the adapter to the database;
    numpy float32 when not given).

    ``selected_ids`` (sorted str array) keeps only rows whose id or id suffix is listed.
    """
    t0 = time.perf_counter()
    num_queries, dim = queries.shape
    scorer = scorer or Fp32Scorer(queries, adapter)
    opened = time.perf_counter()
    with open_shard(shard_path, dim, adapter, adapter_path) as shard:
        scorer.times.add("open", time.perf_counter() - opened)  # header, every id checked, dimensions
        rows = features.block_rows_for(shard.info, block_rows or block_rows_for_queries(num_queries))
        topk = TopK(num_queries, k)
        found = ScanFindings(selected_ids)
        kept = scan(shard, scorer, topk, rows, selected_ids, decode_threads, read_ahead, found)
        with scorer.times("select"):
            scores, found_rows = topk.result()
        with scorer.times("ids"):  # of the rows found: a second pass over 'index'
            id_rows = sorted_unique(found_rows, bound=shard.info.rows)
            ids = features.read_ids_at(shard.handle, id_rows)
        rows_total = shard.info.rows
    elapsed = time.perf_counter() - t0
    if selected_ids is not None and kept == 0:
        log.warning("%s: no row kept by the selected ids (0 of %d).", shard_path, rows_total)
    flops = 2.0 * num_queries * kept * dim
    stats = {
        "seconds": elapsed,
        "gflops": flops / elapsed / 1e9 if elapsed else 0.0,
        "engine": scorer.describe(),
        "phases": dict(scorer.times.seconds),
        "zero_norm_rows": found.zero_rows,
        "first_zero_norm_rows": found.first_zero_rows,
    }
    if found.zero_rows:
        log.warning(
            "%s: %d kept row(s) of zero norm (first at rows %s): failed extractions, they score 0 against every query",
            shard_path,
            found.zero_rows,
            found.first_zero_rows,
        )
    log.info(
        "%s: %d of %d rows kept, %.2f s, %.1f GFLOP/s (%s)",
        shard_path,
        kept,
        rows_total,
        elapsed,
        stats["gflops"],
        stats["engine"],
    )
    log.info(
        "%s: seconds per phase (%s): %s",
        shard_path,
        "reading thread: read, selection, prepare; scoring thread: the rest"
        if read_ahead
        else "one thread, the next block read after each is scored",
        scorer.times.summary(),
    )
    return ShardResult(scores, found_rows, id_rows, ids, rows_total, kept, stats, found.selected_matched)


def raise_nonfinite(shard, block_rows):
    """Count the bad rows over the whole file (no scoring) so the message is complete."""
    bad_rows, total = [], 0
    dataset = shard.handle["features"]
    for start in range(0, shard.info.rows, block_rows):
        block = dataset[start : start + block_rows]
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        total += bad.size
        bad_rows.extend((bad[: max(0, 5 - len(bad_rows))] + start).tolist())
    if total == 0:  # finite features whose scores overflow float32
        raise InputError(
            f"{shard.path}: scores overflow float32 (features of norm above about 1e19). "
            "Normalise the features (ILIAS features are unit vectors)."
        )
    raise features.nonfinite_error(shard.path, total, bad_rows)
