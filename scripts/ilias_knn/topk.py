"""Exact running top-k over score blocks, with deterministic tie order.

Order: descending score; equal scores by ascending database position. Blocks
must arrive in increasing position order. After the first k rows are seen,
only scores strictly above the running k-th best can enter, so a block costs
one comparison pass plus work proportional to the (usually few) survivors,
instead of a full top-k per block.
"""

import torch


def _gather_rows(scores, mask, counts):
    """Masked entries of each row, left-aligned, in column order; pads are -inf / -1."""
    nq = scores.shape[0]
    width = int(counts.max()) if nq else 0
    vals = torch.full((nq, width), float("-inf"), dtype=scores.dtype, device=scores.device)
    cols = torch.full((nq, width), -1, dtype=torch.int64, device=scores.device)
    if width == 0:
        return vals, cols
    row, col = mask.nonzero(as_tuple=True)  # row-major, so columns ascend within a row
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(row.numel(), device=scores.device) - starts[row]
    vals[row, slot] = scores[row, col]
    cols[row, slot] = col
    return vals, cols


def _drop_excess_ties(scores, mask, counts, bound, k):
    """Rows with more than k entries >= bound have ties at the bound: keep the first ones."""
    over = torch.nonzero(counts > k, as_tuple=True)[0]
    if over.numel() == 0:
        return mask, counts
    sub = scores[over]
    eq = sub == bound[over, None]
    excess = (counts[over] - k)[:, None]
    # rank of each tie counted from the right: the last `excess` ties go.
    from_right = eq.flip(1).cumsum(1).flip(1)
    mask[over] &= ~(eq & (from_right <= excess))
    counts[over] = k
    return mask, counts


def select_block(scores, k, threshold=None):
    """Exact top-k candidates of one block, above ``threshold`` (per query) if given.

    Returns (values, columns), each row sorted by descending value then column,
    at most k wide; rows with fewer candidates are padded with -inf / -1.
    """
    nq, width = scores.shape
    if threshold is None:
        bound = torch.full((nq,), float("-inf"), dtype=scores.dtype, device=scores.device)
        mask = None
        counts = torch.full((nq,), width, dtype=torch.int64, device=scores.device)
    else:
        # strictly above the running k-th best: an equal later score loses the tie.
        bound = torch.nextafter(threshold, torch.tensor(float("inf"), dtype=scores.dtype))
        mask = scores >= bound[:, None]
        counts = mask.sum(1)
    if int(counts.max()) > k:
        kth = torch.topk(scores, k, dim=1, sorted=False).values.amin(1)
        bound = torch.maximum(bound, kth)
        mask = scores >= bound[:, None]
        counts = mask.sum(1)
        mask, counts = _drop_excess_ties(scores, mask, counts, bound, k)
    if mask is None:  # whole block, at most k columns
        vals, order = torch.sort(scores, dim=1, descending=True, stable=True)
        return vals, order
    vals, cols = _gather_rows(scores, mask, counts)
    vals, order = torch.sort(vals, dim=1, descending=True, stable=True)
    return vals, torch.gather(cols, 1, order)


def merge_sorted(vals_a, pos_a, vals_b, pos_b, k):
    """Merge two per-row sorted lists where every position in a precedes those in b.

    Stable descending sort keeps a before b on equal scores, which is the
    position order. Pads (-inf) sort last.
    """
    vals = torch.cat([vals_a, vals_b], dim=1)
    pos = torch.cat([pos_a, pos_b], dim=1)
    vals, order = torch.sort(vals, dim=1, descending=True, stable=True)
    keep = min(k, vals.shape[1])
    return vals[:, :keep].contiguous(), torch.gather(pos, 1, order[:, :keep])


class RunningTopK:
    """Top-k of every query over blocks of database rows seen in position order."""

    def __init__(self, num_queries, k, device="cpu"):
        self.k = k
        self.seen = 0
        self.values = torch.empty((num_queries, 0), dtype=torch.float32, device=device)
        self.positions = torch.empty((num_queries, 0), dtype=torch.int64, device=device)

    def add(self, scores, positions):
        """Add a (nq x n) score block for database positions ``positions`` (n,), ascending."""
        if scores.shape[1] == 0:
            return
        full = self.values.shape[1] == self.k
        threshold = self.values[:, -1] if full else None
        vals, cols = select_block(scores, self.k, threshold)
        real = min(self.k, self.seen + scores.shape[1]) - self.values.shape[1]
        if vals.shape[1] == 0:
            self.seen += scores.shape[1]
            return
        # pads carry column -1; map them to position -1 (they never reach the top k)
        pos = torch.where(cols >= 0, positions[cols.clamp(min=0)], -1)
        self.values, self.positions = merge_sorted(
            self.values, self.positions, vals, pos, self.values.shape[1] + max(real, 0)
        )
        self.seen += scores.shape[1]
