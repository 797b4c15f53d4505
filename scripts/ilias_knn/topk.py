"""Exact running top-k over score blocks, with deterministic tie order.

Order: descending score; equal scores by ascending database position. Blocks
must arrive in increasing position order. After the first k rows are seen,
only scores strictly above the running k-th best can enter, so a block costs
one comparison pass plus work proportional to the (usually few) survivors,
instead of a full top-k per block.
"""

import torch


def _candidates(scores, bound):
    """(row, col, counts) of entries >= bound[row], row-major (columns ascending)."""
    row, col = torch.nonzero(scores >= bound[:, None], as_tuple=True)
    return row, col, torch.bincount(row, minlength=scores.shape[0])


def _drop_excess_ties(scores, row, col, counts, bound, k):
    """Rows with more than k entries >= bound have ties at the bound: keep the first ones."""
    excess = (counts - k).clamp(min=0)
    if int(excess.max()) == 0:
        return row, col, counts
    is_tie = (scores[row, col] == bound[row]) & (excess[row] > 0)
    tie_prefix = torch.cumsum(is_tie.to(torch.int64), 0)
    row_start = torch.cumsum(counts, 0) - counts
    before_row = torch.where(row_start > 0, tie_prefix[(row_start - 1).clamp(min=0)], 0)
    tie_rank = tie_prefix - before_row[row]  # 1-based rank of a tie within its row
    ties_in_row = torch.bincount(row, weights=is_tie.to(torch.float64), minlength=len(counts)).to(torch.int64)
    keep = ~is_tie | (tie_rank <= (ties_in_row - excess)[row])
    return row[keep], col[keep], counts - excess


def _gather_rows(scores, row, col, counts):
    """Candidate entries left-aligned per row, in column order; pads are -inf / -1."""
    nq = scores.shape[0]
    width = int(counts.max()) if nq else 0
    vals = torch.full((nq, width), float("-inf"), dtype=scores.dtype, device=scores.device)
    cols = torch.full((nq, width), -1, dtype=torch.int64, device=scores.device)
    if width:
        slot = torch.arange(row.numel(), device=scores.device) - (torch.cumsum(counts, 0) - counts)[row]
        vals[row, slot] = scores[row, col]
        cols[row, slot] = col
    return vals, cols


def select_block(scores, k, threshold=None):
    """Exact top-k candidates of one block, above ``threshold`` (per query) if given.

    Returns (values, columns), each row sorted by descending value then column,
    at most k wide; rows with fewer candidates are padded with -inf / -1.
    """
    nq, width = scores.shape
    if threshold is None and width <= k:  # the whole block is the candidate set
        return torch.sort(scores, dim=1, descending=True, stable=True)
    if threshold is None:
        bound = torch.full((nq,), float("-inf"), dtype=scores.dtype, device=scores.device)
        counts = None
    else:
        # strictly above the running k-th best: an equal later score loses the tie.
        bound = torch.nextafter(threshold, torch.full_like(threshold, float("inf")))
        row, col, counts = _candidates(scores, bound)
    if counts is None or int(counts.max()) > k:
        kth = torch.topk(scores, k, dim=1, sorted=False).values.amin(1)
        bound = torch.maximum(bound, kth)
        row, col, counts = _candidates(scores, bound)
        row, col, counts = _drop_excess_ties(scores, row, col, counts, bound, k)
    vals, cols = _gather_rows(scores, row, col, counts)
    vals, order = torch.sort(vals, dim=1, descending=True, stable=True)
    return vals, torch.gather(cols, 1, order)


def merge_sorted(vals_a, pos_a, vals_b, pos_b, k):
    """Merge two per-row sorted lists where every position in a precedes those in b.

    Linear merge by batched binary search: an entry of b goes after every entry
    of a with an equal or higher score (a wins ties: its positions come first);
    pads (-inf) go last.
    """
    na, nb = vals_a.shape[1], vals_b.shape[1]
    if na == 0 or nb == 0:
        vals, pos = (vals_b, pos_b) if na == 0 else (vals_a, pos_a)
        return vals[:, :k].contiguous(), pos[:, :k].contiguous()
    neg_a, neg_b = -vals_a, -vals_b  # ascending, as searchsorted wants
    dest_b = torch.searchsorted(neg_a, neg_b, right=True) + torch.arange(nb, device=vals_b.device)
    dest_a = torch.searchsorted(neg_b, neg_a, right=False) + torch.arange(na, device=vals_a.device)
    vals = torch.empty((vals_a.shape[0], na + nb), dtype=vals_a.dtype, device=vals_a.device)
    pos = torch.empty((vals_a.shape[0], na + nb), dtype=pos_a.dtype, device=pos_a.device)
    vals.scatter_(1, dest_a, vals_a).scatter_(1, dest_b, vals_b)
    pos.scatter_(1, dest_a, pos_a).scatter_(1, dest_b, pos_b)
    keep = min(k, na + nb)
    return vals[:, :keep].contiguous(), pos[:, :keep].contiguous()


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
