"""bfloat16 filtering with a proven error bound, then exact float32 rescoring.

A bf16 GEMM (about twice the float32 rate on CPUs with AVX512-BF16 or AMX,
and on GPUs) gives approximate scores. Every entry whose approximate score
is close enough to its query's threshold that its float32 score could reach
it is rescored in float32 (a sampled GEMM over just those entries), so the
top-k is that of float32 scoring.

The rows are centred first: y = fl(x - mu), mu the mean of the shard's first
block, so the GEMM computes q.y, which for embeddings sharing a dominant
direction is small where q.x is not, and the bf16 rounding of the GEMM's
output (relative to |q.y|) shrinks with it; q.x = q.y + q.mu, with q.mu
computed once in float32. With q_b = bf16(q), e = q - q_b, y_b = bf16(y),
P = q_b.y_b, v = the GEMM's float32 accumulation of P and a = bf16(v):

    |v - a|                 <= REL |a|                 (output rounding, truncation included)
    |P - v|                 <= g |q_b| |y_b|           (float32 accumulation, g = gamma(2d))
    |q.y - P|               <= |e| |y_b| + |q| |y - y_b|   (Cauchy-Schwarz, twice)
    |q.(x - mu) - q.y|      <= 2^-24 |q| (|x| + |mu|)   (the subtraction's rounding)
    |q.mu - fl(q.mu)|       <= g |q| |mu|
    |s - q.x|               <= g |q| |x|               (s: the float32 score rescoring computes)

so s <= a + REL |a| + c_q + eps_q with c_q = fl(q.mu) and eps_q the sum of the
other terms at the block's largest |y| and |y - y_b| (both measured on the
block; |y_b| <= |y| + |y - y_b|, |x| <= |y| + |mu|). An entry is rescored
when that upper bound reaches the query's threshold t_q: a >= floor_q, the
largest bf16 value below (t_q - c_q - eps_q) / (1 +- REL). A block where
that would pass too many entries (the first blocks of a shard) is scored
densely in float32.
"""

import time
import warnings
from dataclasses import dataclass

import numpy as np

from .arrays import ReusedBuffer
from .path_choice import DENSE, PathChooser
from .phases import PhaseTimes
from .scoring import check_finite, float32_rows, overflow_checked_later

U32 = 2.0**-24  # float32 unit roundoff
UB16 = 2.0**-8  # bfloat16 unit roundoff (round to nearest)
REL = 2.0**-7 * (1 + 2.0**-6)  # |v - a| / |a| for bf16 output by rounding or truncation
SLACK = 1e-3  # relative slack on the bound, for its own float64 evaluation of float32 norms
SAFETY = 1e-6  # absolute slack
DENSE_DENSITY = 0.05  # candidate share above which the dense float32 GEMM is the cheaper
COPY_TILE_BYTES = 1 << 20  # the bf16 copy's float32 temporaries per tile of rows: they stay in cache


def gamma(n):
    return n * U32 / (1 - n * U32)


def bf16_floor_bits(values):
    """int16 bit patterns of the largest bfloat16 values <= ``values`` (float64)."""
    v32 = np.asarray(values, dtype=np.float64).astype(np.float32)
    v32 = np.where(v32.astype(np.float64) > values, np.nextafter(v32, np.float32(-np.inf)), v32)
    bits = v32.view(np.uint32)
    high = (bits >> 16).astype(np.uint16)
    # dropping the low 16 bits rounds towards zero: down for positive values,
    # up for negative ones, which then need one more step away from zero
    negative_inexact = (bits >> 31).astype(bool) & ((bits & 0xFFFF) != 0)
    high = high + negative_inexact.astype(np.uint16)
    return high.view(np.int16)


def order_keys(bits):
    """int16 keys of bf16 bit patterns that order as the values do (-0 just below +0)."""
    bits = np.asarray(bits, dtype=np.int16)
    return bits ^ ((bits >> 15) & np.int16(0x7FFF))


@dataclass
class Bf16Block:
    """A prepared block: float32 rows (numpy, and on the device), their centred
    bf16 copy (None when the block will be scored densely) and its norms."""

    x: np.ndarray
    x_dev: object
    y_bf16: object = None
    y_max: float = 0.0  # largest |y| of a row
    f_max: float = 0.0  # largest |y - y_b| of a row
    copy_seconds: float = 0.0  # making the bf16 copy and its norms (a cost of filtering only)
    probe: bool = False  # scored this way to measure the path not chosen (path_choice.py)


class Bf16Scorer:
    """bf16 filter + float32 rescoring on a torch device (the CPU or a GPU).

    Each block is filtered or scored densely in float32, as ``chooser`` (a
    path_choice.PathChooser) plans it from the costs measured on the blocks
    so far: seconds per entry of the bf16 copy, GEMM and filter, of the dense
    float32 GEMM and selection, and per rescored candidate
    (``measure_costs=False``: filter whenever the candidate share allows). A
    block before every query has k entries is scored densely."""

    def __init__(
        self, queries, device="cpu", adapter=None, dense_density=DENSE_DENSITY, measure_costs=True, chooser=None
    ):
        import torch

        self.torch, self.device = torch, torch.device(device)
        self.on_cpu = self.device.type == "cpu"
        q = np.ascontiguousarray(queries, dtype=np.float32)
        self.queries_np = q
        self.queries = torch.as_tensor(q, device=self.device)
        self.queries_bf16 = self.queries.to(torch.bfloat16)
        q_b = self.queries_bf16.float()
        to64 = lambda t: t.double().cpu().numpy()
        self.q_norm = to64(self.queries.norm(dim=1))
        self.q_b_norm = to64(q_b.norm(dim=1))
        self.e_norm = to64((self.queries - q_b).norm(dim=1))
        self.g = gamma(2 * q.shape[1])  # twice the standard gamma: also a truncating accumulator
        self.adapter = adapter
        self.chooser = chooser or PathChooser(dense_density, measured=measure_costs)
        self.mu = None
        self._rows = [ReusedBuffer(np.float32), ReusedBuffer(np.float32)]
        self._tile = None  # (centred rows, their rounding error): scratch of the bf16 copy
        self._centred_bf16 = [None, None]
        self._approx = None
        self._mask = ReusedBuffer(bool)
        self._scores = ReusedBuffer(np.float32)
        self._turn = 0
        self.blocks = {"dense": 0, "filtered": 0}
        self.rescored = 0
        self.times = PhaseTimes()
        # Costs fed to the chooser are CPU time, wherever spent: with every core
        # running a job, a reading thread's work (the bf16 copy) is not free.
        self._normed = None  # the last block with a bf16 copy (its norms)
        self._first_norms = None  # the shard's first block's (set with mu)

    def prepare(self, block, keep):
        torch = self.torch
        turn, self._turn = self._turn, self._turn ^ 1
        x = float32_rows(block, keep, self._rows[turn])
        if self.adapter is not None and x.shape[0]:
            x = self.adapter(x)
        x_dev = torch.from_numpy(x).to(self.device)
        if x.shape[0] == 0:
            return Bf16Block(x, x_dev)
        if self.mu is None:  # the first block's mean, kept for the whole shard
            check_finite(x.sum(axis=1))  # (a NaN or inf here would spoil mu for every block)
            self.mu = x.mean(axis=0, dtype=np.float64).astype(np.float32)
            self.mu_norm = float(np.linalg.norm(self.mu.astype(np.float64)))
            with overflow_checked_later():  # overflows only where the scores do, which check_finite reports
                self.q_mu = (self.queries_np @ self.mu).astype(np.float64)
            self.mu_t = torch.from_numpy(self.mu)
            # the centred rows' largest norm, for estimating the filter's
            # candidate share before any block has its bf16 copy (an estimate
            # only: each filtered block's bound uses that block's own norms)
            y_max = float(np.sqrt(np.max(np.einsum("ij,ij->i", x - self.mu, x - self.mu))))
            self._first_norms = Bf16Block(None, None, None, y_max, UB16 * y_max)
        path, probe = self.chooser.plan()  # (prepare runs a block ahead of score)
        if path == DENSE:
            return Bf16Block(x, x_dev, probe=probe)
        t0 = time.perf_counter()
        buffer = self._centred_bf16[turn]
        if buffer is None or buffer.shape[0] < x.shape[0] or buffer.shape[1] != x.shape[1]:
            buffer = self._centred_bf16[turn] = torch.empty(x.shape, dtype=torch.bfloat16)
        y_bf16 = buffer[: x.shape[0]]
        y_max, f_max = self._centred_copy(torch.from_numpy(x), y_bf16)
        y_bf16 = y_bf16.to(self.device)
        seconds = time.perf_counter() - t0
        self.times.add("bf16 copy", seconds)
        return Bf16Block(x, x_dev, y_bf16, y_max, f_max, seconds, probe)

    def _centred_copy(self, x, out):
        """out = bf16(x - mu); returns the largest row norms of y = x - mu and of
        y - bf16(y). Tile by tile: the float32 temporaries of one tile stay in
        cache through its six passes, which over the whole block ran from memory."""
        torch = self.torch
        rows = max(1, COPY_TILE_BYTES // (4 * x.shape[1]))
        if self._tile is None or self._tile[0].shape[1] != x.shape[1]:
            self._tile = tuple(torch.empty((rows, x.shape[1]), dtype=torch.float32) for _ in range(2))
        centred, error = self._tile
        y_norms, f_norms = (torch.empty(x.shape[0], dtype=torch.float32) for _ in range(2))
        for start in range(0, x.shape[0], rows):
            part = slice(start, min(start + rows, x.shape[0]))
            y = torch.sub(x[part], self.mu_t, out=centred[: part.stop - start])
            out[part].copy_(y)
            torch.linalg.vector_norm(y, dim=1, out=y_norms[part])
            f = error[: part.stop - start].copy_(out[part])  # bf16(y) - y: the same norm as y - bf16(y)
            f -= y
            torch.linalg.vector_norm(f, dim=1, out=f_norms[part])
        return float(y_norms.max()), float(f_norms.max())

    def score(self, block, positions, topk):
        thresholds = topk.thresholds.astype(np.float64)
        if block.y_bf16 is None or not np.isfinite(thresholds).all():
            self._dense(block, positions, topk)
            return
        entries = self.queries.shape[0] * block.x.shape[0]
        t0 = time.perf_counter()
        with self.times("gemm bf16"):
            approx = self._gemm(block.y_bf16)
        check_finite(approx[0].float().cpu().numpy())
        with self.times("filter"):
            rows, cols = self._candidates(approx, self._floor_bits(thresholds, block))
        bf16_cost = (time.perf_counter() - t0 + block.copy_seconds) / entries
        share = rows.size / entries
        if share > self.chooser.dense_density:  # too many: not worth rescoring one by one
            self.chooser.record_filtered(bf16_cost, share, probe=block.probe)
            self._dense(block, positions, topk, record=False)
            return
        self.blocks["filtered"] += 1
        self.rescored += rows.size
        rescore_cost = None
        if rows.size:
            t0 = time.perf_counter()
            with self.times("rescore"):
                exact = self._rescore(rows, cols, block.x_dev)
            with self.times("select"):
                topk.add_candidates(rows, positions[cols], exact)
            rescore_cost = (time.perf_counter() - t0) / rows.size
        self.chooser.record_filtered(bf16_cost, share, rescore_cost, probe=block.probe)

    def _dense(self, block, positions, topk, record=True):
        """Every score in float32 (the first blocks, or where filtering does not pay)."""
        self.blocks["dense"] += 1
        x, t0 = block.x, time.perf_counter()
        with self.times("gemm fp32"), overflow_checked_later():
            if self.on_cpu:
                scores = np.matmul(self.queries_np, x.T, out=self._scores.view((self.queries_np.shape[0], x.shape[0])))
            else:
                scores = (self.queries @ block.x_dev.T).cpu().numpy()
        check_finite(scores[0])
        with self.times("select"):
            topk.add(scores, positions)
        cost = (time.perf_counter() - t0) / max(1, scores.size)
        if not record:
            return
        with self.times("filter"):
            # how many of these exact scores the filter would pass: the next
            # block's expected candidate share
            share = self._passing_share(scores, topk.thresholds.astype(np.float64), block)
        self.chooser.record_dense(cost, share, probe=block.probe and block.y_bf16 is None)

    def _passing_share(self, scores, thresholds, block):
        if block.y_bf16 is not None:
            self._normed = block
        if not np.isfinite(thresholds).all():
            return 1.0
        # a block without a bf16 copy: the norms of the last one that had it,
        # or of the shard's first block (before any had a copy)
        block = self._normed or self._first_norms
        # an entry passes the filter at the latest when its exact score is above
        # the threshold minus twice the bound's width; its rounding errors are
        # far below their bound, so once the width is the estimate (it decides
        # only which path the next block takes: twice kept the first 30 blocks
        # of a real-format file dense, where the filter passed under 5 %)
        width = self._eps(block) + REL * np.abs(thresholds - self.q_mu)
        passing = np.greater_equal(
            scores, (thresholds - width)[:, None].astype(np.float32), out=self._mask.view(scores.shape)
        )
        return np.count_nonzero(passing) / max(1, passing.size)

    def _eps(self, block):
        """eps_q of the module docstring at the block's norms: |y_b| <= |y| + |f|,
        |x| <= |y| + |mu| (up to rounding, in SLACK)."""
        y_b = block.y_max + block.f_max
        x_max = block.y_max + self.mu_norm
        return (
            self.g * self.q_b_norm * y_b
            + self.e_norm * y_b
            + self.q_norm * block.f_max
            + U32 * self.q_norm * (x_max + self.mu_norm)
            + self.g * self.q_norm * (self.mu_norm + x_max)
        ) * (1 + SLACK) + SAFETY

    def _floor_bits(self, thresholds, block):
        b = thresholds - self.q_mu - self._eps(block)
        floor = np.where(b > 0, b / (1 + REL), b / (1 - REL)) - SAFETY
        return bf16_floor_bits(floor)

    def _gemm(self, y_bf16):
        torch = self.torch
        shape = (self.queries.shape[0], y_bf16.shape[0])
        if self._approx is None or self._approx.numel() < shape[0] * shape[1]:
            self._approx = torch.empty(shape[0] * shape[1], dtype=torch.bfloat16, device=self.device)
        out = self._approx[: shape[0] * shape[1]].view(shape)
        return torch.mm(self.queries_bf16, y_bf16.T, out=out)

    def _candidates(self, approx, floor_bits):
        """(query, column) of the entries at or above their query's floor, row-major."""
        torch = self.torch
        n = approx.shape[1]
        if not self.on_cpu:
            keys = torch.from_numpy(order_keys(floor_bits)).to(self.device)
            keys = torch.where(torch.from_numpy(floor_bits == 0).to(self.device), -1, keys)
            bits = approx.view(torch.int16)
            rows, cols = torch.nonzero((bits ^ ((bits >> 15) & 0x7FFF)) >= keys[:, None], as_tuple=True)
            return rows.cpu().numpy(), cols.cpu().numpy()
        bits = approx.view(torch.int16).numpy()
        mask = np.greater_equal(bits, floor_bits[:, None], out=self._mask.view(bits.shape))
        positive = floor_bits > 0
        if not positive.all():  # a negative score is never >= a positive floor, else compare keys
            keys = np.where(floor_bits == 0, np.int16(-1), order_keys(floor_bits))
            mask[~positive] = order_keys(bits[~positive]) >= keys[~positive, None]
        flat = np.flatnonzero(mask)
        rows = flat // n
        return rows, flat - rows * n

    def _rescore(self, rows, cols, x_dev):
        """float32 scores of the chosen entries, in their order. Computed
        database row by database row: each row of the block is read from
        memory once for all its candidates."""
        torch = self.torch
        nq, n = self.queries.shape[0], x_dev.shape[0]
        # a stable radix sort where the row numbers fit 16 bits (a block's do)
        order = np.argsort(cols.astype(np.uint16) if n <= 1 << 16 else cols, kind="stable")
        crow = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=n), out=crow[1:])
        with warnings.catch_warnings():  # sampled_addmm is the primitive needed; its "beta" notice is noise
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            pattern = torch.sparse_csr_tensor(
                torch.from_numpy(crow).to(self.device),
                torch.from_numpy(rows[order]).to(self.device),
                torch.zeros(rows.size, dtype=torch.float32, device=self.device),
                size=(n, nq),
                check_invariants=False,
            )
        by_row = torch.sparse.sampled_addmm(pattern, x_dev, self.queries.T).values().cpu().numpy()
        exact = np.empty_like(by_row)
        exact[order] = by_row
        return exact

    def describe(self):
        return (
            f"bf16 on {self.device} (torch): {self.blocks['filtered']} blocks filtered "
            f"({self.rescored} entries rescored in fp32), {self.blocks['dense']} dense fp32; "
            f"{self.chooser.describe()}"
        )
