"""Scoring a block of database rows against all queries, exactly.

``fp32``: a float32 GEMM, every score exact (to float32 rounding).

``bf16``: a bfloat16 GEMM (about 4x the float32 rate on CPUs with AVX512-BF16,
and on GPUs) gives approximate scores a with a proven bound |s - a| <= eps_q +
2^-7 |a| for each query q, where s is the float32 score. With q = q_b + e
(q_b = bf16(q)) and x = x_b + f:

    s - q_b.x_b = e.x_b + q_b.f + e.f        (Cauchy-Schwarz on each term)
    |s - q_b.x_b| <= |e||x_b| + |q_b||f| + |e||f|
    fp32 accumulation of the exact bf16 products: <= gamma_d |q_b||x_b|
    the float32 score s itself vs. the real q.x:  <= gamma_d |q||x| (taken as a second gamma term)
    rounding the GEMM output to bf16:             <= 2^-7 |a|

Every entry whose bound reaches the running exact k-th best score is rescored
in float32 (a sampled GEMM over just those entries), so the top-k is the same
as with ``fp32``. When too many entries survive the filter (the first blocks of
a shard, before the k-th best has risen) the block is scored densely in fp32.
"""

import warnings

import torch

# sampled_addmm is exactly the primitive needed; its "beta" notice is noise in job logs.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

OUTPUT_ROUNDING = 2.0**-7  # bf16 output: <= 1 ulp (covers round-to-nearest and truncation)
SAFETY = 1e-6  # absolute slack for the float32 rounding of the bound itself
DENSE_FALLBACK_DENSITY = 0.08  # above this candidate density the dense fp32 GEMM is cheaper


class Bf16Bound:
    """Per-query pieces of the bound, computed once per shard."""

    def __init__(self, queries):
        self.q_bf16 = queries.to(torch.bfloat16)
        q_hi = self.q_bf16.float()
        self.q_norm = q_hi.norm(dim=1)
        self.e_norm = (queries - q_hi).norm(dim=1)
        d = queries.shape[1]
        u = 2.0**-24
        self.gamma = d * u / (1 - d * u)

    def block(self, x):
        """bf16 scores of block ``x`` (float32) and the per-query additive bound."""
        x_bf16 = x.to(torch.bfloat16)
        x_hi = x_bf16.float()
        x_norm = x_hi.norm(dim=1).max()
        f_norm = (x - x_hi).norm(dim=1).max()
        approx = self.q_bf16 @ x_bf16.T
        eps = (
            self.e_norm * x_norm + self.q_norm * f_norm + self.e_norm * f_norm
            + 2 * self.gamma * self.q_norm * x_norm
        ) * (1 + 1e-3) + SAFETY
        return approx, eps


def candidate_floor(threshold, eps):
    """Lowest approximate score a that may hide an exact score > threshold.

    Exact s <= a + eps + 2^-7 |a|, so s > t needs a + 2^-7 |a| > t - eps.
    """
    b = threshold - eps
    floor = torch.where(b > 0, b / (1 + OUTPUT_ROUNDING), b / (1 - OUTPUT_ROUNDING))
    return floor - SAFETY


def score_block(topk, queries, bound, x, positions):
    """Add block ``x`` to the running top-k, exactly; bf16 filter when ``bound`` is given."""
    if bound is None or not topk.full:
        topk.add(queries @ x.T, positions)
        return "dense"
    approx, eps = bound.block(x)
    floor = candidate_floor(topk.threshold, eps)
    row, col = torch.nonzero(approx >= floor[:, None], as_tuple=True)
    if row.numel() > DENSE_FALLBACK_DENSITY * approx.numel():
        topk.add(queries @ x.T, positions)
        return "dense"
    counts = torch.bincount(row, minlength=queries.shape[0])
    if row.numel():
        crow = torch.zeros(queries.shape[0] + 1, dtype=torch.int64, device=x.device)
        torch.cumsum(counts, 0, out=crow[1:])
        pattern = torch.sparse_csr_tensor(  # the candidate entries, as a CSR pattern
            crow, col, torch.zeros(row.numel(), dtype=x.dtype, device=x.device),
            size=(queries.shape[0], x.shape[0]), check_invariants=False,
        )
        exact = torch.sparse.sampled_addmm(pattern, queries, x.T).values()
    else:
        exact = torch.empty(0, dtype=x.dtype, device=x.device)
    topk.add_sparse(row, col, exact, positions, x.shape[0])
    return "sparse"
