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


def _gather_rows(values, row, col, counts):
    """Sparse entries (row-major) left-aligned per row, in column order; pads are -inf / -1."""
    nq = counts.shape[0]
    width = int(counts.max()) if nq else 0
    vals = torch.full((nq, width), float("-inf"), dtype=values.dtype, device=values.device)
    cols = torch.full((nq, width), -1, dtype=torch.int64, device=values.device)
    if width:
        slot = torch.arange(row.numel(), device=values.device) - (torch.cumsum(counts, 0) - counts)[row]
        vals[row, slot] = values
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
    return _sorted_rows(scores[row, col], row, col, counts, k)


def _sorted_rows(values, row, col, counts, k):
    vals, cols = _gather_rows(values, row, col, counts)
    vals, order = torch.sort(vals, dim=1, descending=True, stable=True)
    return vals[:, :k], torch.gather(cols, 1, order[:, :k])


def merge_sorted(vals_a, pos_a, vals_b, pos_b, k):
    """Merge two per-row sorted lists where every position in a precedes those in b.

    Linear merge: a batched binary search places each entry of b after every
    entry of a with an equal or higher score (a wins ties: its positions come
    first), then a fills the remaining slots in order; pads (-inf) go last.
    """
    na, nb = vals_a.shape[1], vals_b.shape[1]
    if na == 0 or nb == 0:
        vals, pos = (vals_b, pos_b) if na == 0 else (vals_a, pos_a)
        return vals[:, :k].contiguous(), pos[:, :k].contiguous()
    nq = vals_a.shape[0]
    # final slot of each b entry: its rank in b plus the a entries scoring >= it
    dest_b = torch.searchsorted(-vals_a, -vals_b, right=True) + torch.arange(nb, device=vals_b.device)
    taken = torch.zeros((nq, na + nb), dtype=torch.bool, device=vals_a.device)
    taken.scatter_(1, dest_b, True)
    # a keeps its order in the free slots (each row has exactly na of them)
    vals = torch.empty((nq, na + nb), dtype=vals_a.dtype, device=vals_a.device)
    pos = torch.empty((nq, na + nb), dtype=pos_a.dtype, device=pos_a.device)
    vals.scatter_(1, dest_b, vals_b)
    pos.scatter_(1, dest_b, pos_b)
    free = ~taken
    vals[free] = vals_a.reshape(-1)
    pos[free] = pos_a.reshape(-1)
    keep = min(k, na + nb)
    return vals[:, :keep].contiguous(), pos[:, :keep].contiguous()


class RunningTopK:
    """Top-k of every query over blocks of database rows seen in position order.

    Sorted candidate chunks of later blocks wait in a buffer and are merged in
    one go once they add up to about k/2 columns: merging costs memory traffic
    over queries x k, so fewer, larger merges are cheaper. Filtering against
    the k-th best of the merged part (a lower bound of the true one) stays exact.
    Call ``finish()`` before reading ``values`` / ``positions``.
    """

    def __init__(self, num_queries, k, device="cpu", flush_width=None):
        self.k = k
        self.seen = 0
        self.flush_width = flush_width if flush_width is not None else max(1, k // 2)
        self.values = torch.empty((num_queries, 0), dtype=torch.float32, device=device)
        self.positions = torch.empty((num_queries, 0), dtype=torch.int64, device=device)
        self._pending = []  # (values, positions) chunks, each sorted, in block order
        self._pending_width = 0
        self._pending_rows = 0

    @property
    def full(self):
        return self.values.shape[1] == self.k

    @property
    def threshold(self):
        """Per-query exact k-th best of the merged part (None until k rows are merged)."""
        return self.values[:, -1] if self.full else None

    def add(self, scores, positions):
        """Add a (nq x n) score block for database positions ``positions`` (n,), ascending."""
        if scores.shape[1] == 0:
            return
        vals, cols = select_block(scores, self.k, self.threshold)
        self._push(vals, cols, positions, scores.shape[1])

    def add_sparse(self, row, col, values, positions, width):
        """Add exact scores of some entries of a block of ``width`` rows (full state only).

        Entries (row-major, columns ascending) must include every entry of the
        block whose exact score exceeds the running k-th best; others are ignored.
        """
        above = values > self.threshold[row]  # strictly: an equal later score loses
        row, col, values = row[above], col[above], values[above]
        counts = torch.bincount(row, minlength=self.values.shape[0])
        vals, cols = _sorted_rows(values, row, col, counts, self.k)
        self._push(vals, cols, positions, width)

    def _push(self, vals, cols, positions, width):
        # pads carry column -1; map them to position -1 (they never reach the top k)
        pos = torch.where(cols >= 0, positions[cols.clamp(min=0)], -1)
        self._pending.append((vals, pos))
        self._pending_width += vals.shape[1]
        self._pending_rows += width
        if not self.full or self._pending_width >= self.flush_width:
            self.finish()

    def finish(self):
        """Merge the buffered chunks into ``values`` / ``positions``."""
        if not self._pending:
            return self
        if len(self._pending) == 1:
            vals, pos = self._pending[0]
        else:  # stable: equal scores keep block order, i.e. position order
            vals, order = torch.sort(torch.cat([v for v, _ in self._pending], 1), dim=1,
                                     descending=True, stable=True)
            pos = torch.gather(torch.cat([p for _, p in self._pending], 1), 1, order)
        self.seen += self._pending_rows
        width = min(self.k, self.seen)
        self.values, self.positions = merge_sorted(self.values, self.positions, vals, pos, width)
        self._pending, self._pending_width, self._pending_rows = [], 0, 0
        return self
