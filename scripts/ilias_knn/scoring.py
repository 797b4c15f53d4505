"""Scorers: a block of database rows in, exact scores into a TopK (topk.py) out.

Every scorer has the same two steps. ``prepare`` turns a block as stored
(float16 or float32 rows, after the selection) into what its kernel needs,
adapter applied; it runs one block ahead, in a reading thread where the job
reads ahead (shard_search.reads_ahead). ``score`` adds
the block's scores to the TopK through its protocol alone (``thresholds``,
``add``, ``add_candidates``). The scorers are interchangeable: each returns
the float32 top-k. Each keeps its ``times`` per phase (phases.py).

- ``Fp32Scorer``: numpy's BLAS on the CPU, every score.
- ``TorchFp32Scorer``: float32 on a torch device (a GPU); only the entries at
  or above each query's threshold leave the device.
- ``Bf16Scorer`` (bf16.py): a bfloat16 GEMM with a proven error bound, then
  exact float32 rescoring of every entry that could enter.
"""

import numpy as np

from . import features
from .arrays import ReusedBuffer
from .phases import PhaseTimes


class NonFiniteBlock(Exception):
    """The block holds NaN or inf (the search then counts the bad rows)."""


def overflow_checked_later():
    """Scores that overflow float32 are found by check_finite and named with
    their file; numpy's own warning would be a second, vaguer message."""
    return np.errstate(over="ignore", invalid="ignore")


class Fp32Scorer:
    """numpy float32 GEMM on the CPU. Prepared blocks alternate between two
    reused buffers: one is scored while the next is prepared."""

    def __init__(self, queries, adapter=None):
        self.queries = np.ascontiguousarray(queries, dtype=np.float32)
        self.adapter = adapter
        self._rows = [ReusedBuffer(np.float32), ReusedBuffer(np.float32)]
        self._turn = 0
        self._scores = ReusedBuffer(np.float32)
        self.name = "fp32 (numpy BLAS)"
        self.times = PhaseTimes()

    def prepare(self, block, keep):
        x = float32_rows(block, keep, self._rows[self._turn])
        self._turn ^= 1
        if self.adapter is not None and x.shape[0]:
            x = self.adapter(x)
        return x

    def score(self, x, positions, topk):
        scores = self._scores.view((self.queries.shape[0], x.shape[0]))
        with self.times("gemm"), overflow_checked_later():
            np.matmul(self.queries, x.T, out=scores)
        check_finite(scores[0])
        with self.times("select"):
            topk.add(scores, positions)

    def describe(self):
        return self.name


def float32_rows(block, keep, buffer):
    """The kept rows of a stored block as float32 (into ``buffer``)."""
    if keep is not None:
        block = block[keep]
    return features.to_float32(block, out=buffer.view(block.shape))


def check_finite(first_query_scores):
    """Raise NonFiniteBlock if the block holds NaN or inf. One query's scores
    tell: a row with NaN or inf scores NaN or +-inf against every query
    (0 * inf is NaN), so no pass over the rows themselves is needed."""
    if not np.isfinite(first_query_scores).all():
        raise NonFiniteBlock


class TorchFp32Scorer:
    """float32 on a torch device (TF32 off: scores stay float32). Rows go to
    the device as stored (float16: half the bytes) and are converted there."""

    def __init__(self, queries, device, adapter=None):
        import torch

        self.torch, self.device = torch, torch.device(device)
        self.queries = torch.as_tensor(np.ascontiguousarray(queries, dtype=np.float32), device=self.device)
        self.adapter = adapter.to(self.device) if adapter is not None else None
        self.name = f"fp32 on {self.device} (torch)"
        self.times = PhaseTimes()

    def prepare(self, block, keep):
        torch = self.torch
        rows = block[keep] if keep is not None else block
        x = torch.from_numpy(np.ascontiguousarray(rows)).to(self.device).float()
        if self.adapter is not None and x.shape[0]:
            x = self.adapter(x)
        return x

    def score(self, x, positions, topk):
        with self.times("gemm + filter"):
            rows, cols, values = self._candidates(x, topk)
        with self.times("select"):
            topk.add_candidates(rows, positions[cols], values)

    def _candidates(self, x, topk):
        """(query, column, score) of the entries at or above each query's threshold
        (a query without k entries yet: the block's own top-k), on the CPU."""
        torch = self.torch
        scores = self.queries @ x.T
        check_finite(scores[0].cpu().numpy())
        thresholds = torch.from_numpy(topk.thresholds).to(self.device)
        full = torch.isfinite(thresholds)
        rows, cols = torch.nonzero((scores >= thresholds[:, None]) & full[:, None], as_tuple=True)
        values = scores[rows, cols]
        if not bool(full.all()):  # queries without k entries yet: the block's own top-k
            open_rows = torch.nonzero(~full, as_tuple=True)[0]
            top = torch.topk(scores[open_rows], min(topk.k, scores.shape[1]), dim=1)
            rows = torch.cat([rows, open_rows.repeat_interleave(top.indices.shape[1])])
            cols = torch.cat([cols, top.indices.reshape(-1)])
            values = torch.cat([values, top.values.reshape(-1)])
            order = torch.argsort(rows, stable=True)
            rows, cols, values = rows[order], cols[order], values[order]
        return rows.cpu().numpy(), cols.cpu().numpy(), values.cpu().numpy()

    def describe(self):
        return self.name
