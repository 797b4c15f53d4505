"""Search one database shard (an HDF5 feature file) for the exact top-k of every query."""

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import features
from .adapter import check_adapter_dim
from .errors import InputError
from .scoring import Bf16Bound, score_block
from .selection import selection_mask
from .topk import RunningTopK

log = logging.getLogger(__name__)

# Score block budget: queries x block rows x 4 bytes stays near this, so a
# shard job's memory is set by the query count, never by the shard's rows.
SCORE_BLOCK_BYTES = 32 << 20  # measured best on 2 cores: 4,096 rows for 2,000 queries
MIN_BLOCK_ROWS, MAX_BLOCK_ROWS = 1024, 65536


def resolve_device(device):
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise InputError("device: cuda was asked for, but torch sees no CUDA GPU. Use cpu or auto.")
        # TF32 would round the inputs to 10-bit mantissas: scores must stay float32-exact.
        torch.backends.cuda.matmul.allow_tf32 = False
    return device


def block_rows_for_queries(num_queries):
    rows = SCORE_BLOCK_BYTES // (4 * max(1, num_queries))
    return int(min(MAX_BLOCK_ROWS, max(MIN_BLOCK_ROWS, rows)))


def prepare_queries(query_feats, adapter, device):
    """Queries as a float32 tensor on ``device``, adapted when an adapter is given."""
    q = torch.from_numpy(np.ascontiguousarray(query_feats, dtype=np.float32)).to(device)
    if adapter is not None:
        q = adapter.to(device)(q)
    return q


@dataclass
class ShardResult:
    scores: np.ndarray  # nq x m float32, rows sorted by descending score
    rows: np.ndarray  # nq x m int64, row numbers within the shard file
    id_rows: np.ndarray  # sorted unique rows appearing in ``rows``
    ids: np.ndarray  # ids of ``id_rows``
    rows_total: int
    rows_kept: int
    stats: dict = field(default_factory=dict)


def search_shard(
    queries,
    shard_path,
    k,
    adapter=None,
    adapter_path=None,
    selected_ids=None,
    device="cpu",
    block_rows=None,
    scoring="fp32",
):
    """Exact top-k of ``queries`` (a prepared float32 tensor) in one feature file.

    ``adapter`` is applied to every database block; ``selected_ids`` (sorted
    str array) keeps only rows whose id or id suffix is listed. ``scoring``
    "bf16" filters with bounded bf16 scores and rescores in fp32 (same result).
    """
    t0 = time.perf_counter()
    num_queries = queries.shape[0]
    with features.open_feature_file(shard_path) as handle:
        info = features.check_header(handle, shard_path)
        if adapter is not None:
            check_adapter_dim(adapter, info.dim, adapter_path, shard_path)
            db_dim = adapter.out_dim
        else:
            db_dim = info.dim
        if db_dim != queries.shape[1]:
            raise InputError(
                f"{shard_path}: database vectors are {db_dim}-d but the queries are "
                f"{queries.shape[1]}-d. Queries and database must come from the same model "
                "(and the same adapter)."
            )
        dev_adapter = adapter.to(device) if adapter is not None else None
        rows = features.block_rows_for(info, block_rows or block_rows_for_queries(num_queries))
        topk = RunningTopK(num_queries, k, device=device)
        bound = Bf16Bound(queries) if scoring == "bf16" else None
        block_kinds = {"dense": 0, "sparse": 0}
        id_blocks = features.iter_id_blocks(handle, rows) if selected_ids is not None else None
        kept = 0
        report_every = max(1, info.rows // 10)
        next_report = report_every
        for start, block in features.iter_blocks(handle, info, rows):
            x = torch.from_numpy(block).to(device, non_blocking=True).float()
            if not bool(torch.isfinite(x.sum())):  # one reduction; NaN/inf propagate
                _raise_nonfinite(handle, info, shard_path, rows)
            positions = torch.arange(start, start + x.shape[0], device=device)
            if id_blocks is not None:
                _, ids = next(id_blocks)
                keep = torch.from_numpy(selection_mask(ids, selected_ids)).to(device)
                x, positions = x[keep], positions[keep]
            kept += x.shape[0]
            if x.shape[0] == 0:
                continue
            if dev_adapter is not None:
                x = dev_adapter(x)
            block_kinds[score_block(topk, queries, bound, x, positions)] += 1
            if start + block.shape[0] >= next_report:
                log.info("%s: %d/%d rows searched", shard_path, start + block.shape[0], info.rows)
                next_report += report_every
        topk.finish()
        scores = topk.values.cpu().numpy()
        found_rows = topk.positions.cpu().numpy()
        id_rows = torch.unique(topk.positions.cpu()).numpy()
        ids = features.read_ids_at(handle, id_rows)
    elapsed = time.perf_counter() - t0
    if selected_ids is not None and kept == 0:
        log.warning("%s: no row kept by the selected ids (0 of %d).", shard_path, info.rows)
    flops = 2.0 * num_queries * kept * queries.shape[1]
    stats = {"seconds": elapsed, "gflops": flops / elapsed / 1e9 if elapsed else 0.0,
             "scoring": scoring, "blocks": block_kinds}
    log.info(
        "%s: %d of %d rows kept, %.2f s, %.1f GFLOP/s (%s scoring; blocks: %d dense fp32, %d "
        "bf16-filtered + exact rescoring)", shard_path, kept, info.rows, elapsed, stats["gflops"],
        scoring, block_kinds["dense"], block_kinds["sparse"],
    )
    return ShardResult(scores, found_rows, id_rows, ids, info.rows, kept, stats)


def _raise_nonfinite(handle, info, path, rows):
    """Count the bad rows over the whole file (no scoring) so the message is complete."""
    bad_rows = []
    total = 0
    for start, block in features.iter_blocks(handle, info, rows):
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        total += bad.size
        bad_rows.extend((bad[: 5 - len(bad_rows)] + start).tolist() if len(bad_rows) < 5 else [])
    raise features.nonfinite_error(path, total, bad_rows)
