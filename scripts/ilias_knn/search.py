"""Search one database shard (an HDF5 feature file) for the exact top-k of every query."""

import logging
import time
from dataclasses import dataclass, field

from pathlib import Path

import numpy as np

from . import features
from .adapter import check_adapter_dim
from .arrays import ReusedBuffer, sorted_unique
from .errors import InputError
from .reservoir_topk import ReservoirTopK
from .selection import selection_mask

# torch (3 s to import on this project's machine) is imported only by the GPU
# and bf16 paths: the CPU float32 path is numpy + faiss.

log = logging.getLogger(__name__)

# Score block budget: queries x block rows x 4 bytes stays near this, so a
# shard job's memory is set by the query count, never by the shard's rows.
SCORE_BLOCK_BYTES = 32 << 20  # measured best on 2 cores: 4,096 rows for 2,000 queries
MIN_BLOCK_ROWS, MAX_BLOCK_ROWS = 1024, 65536


def nvidia_driver_present():
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()


def resolve_device(device):
    if device == "auto":
        if not nvidia_driver_present():  # no GPU: decided without importing torch
            return "cpu"
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("device: cuda was asked for, but torch sees no CUDA GPU. Use cpu or auto.")
        # TF32 would round the inputs to 10-bit mantissas: scores must stay float32-exact.
        torch.backends.cuda.matmul.allow_tf32 = False
    return device


def cpu_has_fast_bf16():
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_scoring(scoring, device):
    if scoring != "auto":
        return scoring
    return "bf16" if str(device).startswith("cuda") or cpu_has_fast_bf16() else "fp32"


def block_rows_for_queries(num_queries):
    rows = SCORE_BLOCK_BYTES // (4 * max(1, num_queries))
    return int(min(MAX_BLOCK_ROWS, max(MIN_BLOCK_ROWS, rows)))


def prepare_queries(query_feats, adapter, device):
    """Float32 queries, adapted when an adapter is given: a numpy array for the
    CPU, a torch tensor on ``device`` otherwise."""
    q = np.ascontiguousarray(query_feats, dtype=np.float32)
    if adapter is not None:
        q = adapter.apply_numpy(q)
    if str(device) == "cpu":
        return q
    import torch

    return torch.from_numpy(q).to(device)


@dataclass
class ShardResult:
    scores: np.ndarray  # nq x m float32, rows sorted by descending score
    rows: np.ndarray  # nq x m int64, row numbers within the shard file
    id_rows: np.ndarray  # sorted unique rows appearing in ``rows``
    ids: np.ndarray  # ids of ``id_rows`` (ascii bytes)
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
    threads=None,
):
    """Exact top-k of ``queries`` (from prepare_queries) in one feature file.

    ``adapter`` is applied to every database block; ``selected_ids`` (sorted
    str array) keeps only rows whose id or id suffix is listed. ``scoring``
    "bf16" filters with bounded bf16 scores and rescores in fp32 (same result).
    """
    t0 = time.perf_counter()
    num_queries = queries.shape[0]
    with features.open_feature_file(shard_path) as handle:
        info = features.check_header(handle, shard_path)
        features.check_ids_ascii(handle, shard_path)
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
        rows = features.block_rows_for(info, block_rows or block_rows_for_queries(num_queries))
        if str(device) == "cpu" and scoring == "fp32":
            selector = CpuSelector(queries, k, adapter, threads)
        else:
            selector = TorchSelector(queries, k, adapter, device, scoring, threads)
        id_blocks = features.iter_id_blocks(handle, rows) if selected_ids is not None else None
        kept = 0
        report_every = max(1, info.rows // 10)
        next_report = report_every
        for start, block in features.iter_blocks(handle, info, rows):
            keep = None
            if id_blocks is not None:
                _, ids = next(id_blocks)
                keep = selection_mask(ids, selected_ids)
            x, positions = selector.prepare(block, start, keep)
            if x is None:  # NaN or inf in the block
                _raise_nonfinite(handle, info, shard_path, rows)
            kept += x.shape[0]
            if x.shape[0] == 0:
                continue
            selector.add(x, positions)
            if start + block.shape[0] >= next_report:
                log.info("%s: %d/%d rows searched", shard_path, start + block.shape[0], info.rows)
                next_report += report_every
        scores, found_rows = selector.result()
        id_rows = sorted_unique(found_rows, bound=info.rows)
        ids = features.read_ids_at(handle, id_rows)
    elapsed = time.perf_counter() - t0
    if selected_ids is not None and kept == 0:
        log.warning("%s: no row kept by the selected ids (0 of %d).", shard_path, info.rows)
    flops = 2.0 * num_queries * kept * queries.shape[1]
    stats = {"seconds": elapsed, "gflops": flops / elapsed / 1e9 if elapsed else 0.0,
             "scoring": scoring, "engine": selector.describe()}
    log.info("%s: %d of %d rows kept, %.2f s, %.1f GFLOP/s (%s)", shard_path, kept, info.rows,
             elapsed, stats["gflops"], stats["engine"])
    return ShardResult(scores, found_rows, id_rows, ids, info.rows, kept, stats)


class CpuSelector:
    """CPU, float32: numpy blocks, numpy's BLAS scores, sortable-key reservoirs
    select (reservoir_topk). The float32 rows and the score block live in
    reused buffers."""

    def __init__(self, queries, k, adapter, threads):
        import faiss

        if threads:
            faiss.omp_set_num_threads(threads)
        self.queries = np.ascontiguousarray(np.asarray(queries), dtype=np.float32)
        self.adapter = adapter
        self.topk = ReservoirTopK(self.queries.shape[0], k)
        self._rows = ReusedBuffer(np.float32)
        self._scores = ReusedBuffer(np.float32)

    def prepare(self, block, start, keep):
        """float32 rows and their positions (None if the block holds NaN or inf)."""
        x = features.to_float32(block, out=self._rows.view(block.shape))
        if not np.isfinite(x.sum()):  # one reduction; NaN/inf propagate
            return None, None
        positions = np.arange(start, start + x.shape[0], dtype=np.int64)
        if keep is not None:
            x, positions = x[keep], positions[keep]
        if self.adapter is not None and x.shape[0]:
            x = self.adapter.apply_numpy(x)
        return x, positions

    def add(self, x, positions):
        scores = self._scores.view((self.queries.shape[0], x.shape[0]))
        # numpy's BLAS (OpenBLAS): torch's MKL takes a slow path on AMD CPUs
        # (85 vs 126 GFLOP/s on this project's EPYC); float32 products either way
        np.matmul(self.queries, x.T, out=scores)
        self.topk.add(scores, positions)

    def result(self):
        return self.topk.result()

    def describe(self):
        return "fp32 scoring: numpy BLAS + sortable-key reservoirs"


class TorchSelector:
    """GPU, or bf16 filtering: torch blocks on the device, a threshold-based running top-k."""

    def __init__(self, queries, k, adapter, device, scoring, threads):
        import torch

        from .scoring import Bf16Bound
        from .topk import RunningTopK

        if threads:
            torch.set_num_threads(threads)
        self.torch, self.device = torch, device
        self.queries = torch.as_tensor(queries, device=device)
        self.adapter = adapter.to(device) if adapter is not None else None
        self.topk = RunningTopK(self.queries.shape[0], k, device=device)
        self.bound = Bf16Bound(self.queries) if scoring == "bf16" else None
        self.scoring = scoring
        self.block_kinds = {"dense": 0, "sparse": 0}

    def prepare(self, block, start, keep):
        torch = self.torch
        x = torch.from_numpy(block).to(self.device, non_blocking=True).float()  # float16 -> 32 on the device
        if not bool(torch.isfinite(x.sum())):
            return None, None
        positions = torch.arange(start, start + x.shape[0], device=self.device)
        if keep is not None:
            keep = torch.from_numpy(keep).to(self.device)
            x, positions = x[keep], positions[keep]
        if self.adapter is not None and x.shape[0]:
            x = self.adapter(x)
        return x, positions

    def add(self, x, positions):
        from .scoring import score_block

        self.block_kinds[score_block(self.topk, self.queries, self.bound, x, positions)] += 1

    def result(self):
        self.topk.finish()
        return self.topk.values.cpu().numpy(), self.topk.positions.cpu().numpy()

    def describe(self):
        return (f"{self.scoring} scoring, torch; blocks: {self.block_kinds['dense']} dense fp32, "
                f"{self.block_kinds['sparse']} bf16-filtered + exact rescoring")


def _raise_nonfinite(handle, info, path, rows):
    """Count the bad rows over the whole file (no scoring) so the message is complete."""
    bad_rows = []
    total = 0
    for start, block in features.iter_blocks(handle, info, rows, read_ahead=False):
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        total += bad.size
        bad_rows.extend((bad[: 5 - len(bad_rows)] + start).tolist() if len(bad_rows) < 5 else [])
    raise features.nonfinite_error(path, total, bad_rows)
