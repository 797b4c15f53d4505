"""Exact running top-k of every query: the one collector every search and merge feeds.

The protocol, in the spirit of faiss's result handlers: scores come in as a
dense block (``add``: queries x rows) or as chosen entries (``add_candidates``:
query, position, score triples), ``thresholds`` bounds each query's current
k-th best score from below (what an entry must reach to matter), and
``result`` is the top-k.
Scorers and the merge only call these; how the top-k is kept is this module's
business.

Order (the tie rule, defined here only): descending score, then ascending
database position. Each (score, position) becomes one uint64 key, the score
mapped to a descending integer in the high 32 bits and the position in the
low 32, so a query's top-k is exactly its k smallest keys. Keys wait in a
per-query reservoir that ``np.partition`` cuts back to k when it is full;
an entry enters only at or above its query's current k-th best.
"""

import sys

import numpy as np

from .arrays import ReusedBuffer

EMPTY = np.uint64(np.iinfo(np.uint64).max)  # an unused slot; sorts after every real key
MAX_POSITION = (1 << 32) - 1
LITTLE_ENDIAN = sys.byteorder == "little"


def score_keys(scores, positions):
    """uint64 keys: high 32 bits descend with the float32 score, low 32 bits are
    the position, so ascending keys = descending score, then ascending position."""
    scores = np.asarray(scores, dtype=np.float32) + np.float32(0)  # -0.0 -> +0.0: equal scores, equal keys
    bits = scores.view(np.int32)
    # float bits -> descending order: positive scores flip their 31 low bits,
    # negative ones keep them (and their sign bit sorts them after every positive)
    flip = bits >> 31
    np.invert(flip, out=flip)
    flip &= np.int32(0x7FFFFFFF)
    flip ^= bits
    if not LITTLE_ENDIAN:
        keys = flip.view(np.uint32).astype(np.uint64)
        keys <<= np.uint64(32)
        keys |= np.asarray(positions).astype(np.uint64, copy=False)
        return keys
    # the two 32-bit halves written in place: half the passes of shift-and-or
    keys = np.empty(scores.shape, dtype=np.uint64)
    halves = keys.view(np.uint32).reshape(*scores.shape, 2)
    halves[..., 1] = flip.view(np.uint32)
    halves[..., 0] = positions
    return keys


def decode_keys(keys):
    """(float32 scores, int64 positions) of keys (not EMPTY)."""
    bits = (keys >> np.uint64(32)).astype(np.uint32).view(np.int32)
    flip = bits >> 31  # the mapping of score_keys is its own inverse
    np.invert(flip, out=flip)
    flip &= np.int32(0x7FFFFFFF)
    flip ^= bits
    return flip.view(np.float32), (keys & np.uint64(MAX_POSITION)).astype(np.int64)


def _check_positions(positions):
    if positions.size and (positions.min() < 0 or positions.max() > MAX_POSITION):
        raise ValueError(f"positions must lie in [0, {MAX_POSITION}]")


class TopK:
    """Top-k of ``num_queries`` queries over everything added, in any order.

    Queries are kept in groups of ``group_rows``, so that every step's
    temporaries are a few MB of reused memory rather than fresh pages."""

    def __init__(self, num_queries, k, room=None, group_rows=256):
        self.num_queries, self.k = int(num_queries), int(k)
        bounds = [(lo, min(num_queries, lo + group_rows)) for lo in range(0, num_queries, group_rows)]
        self._groups = [(lo, hi, _Reservoirs(hi - lo, k, room)) for lo, hi in bounds]

    @property
    def thresholds(self):
        """Per query, a lower bound of its k-th best score so far: an entry
        scoring below it cannot enter. -inf until the query has k entries;
        exact after each cut of the reservoirs, which comes once they hold on
        average max(64, k / 4) keys per query beyond k (or one query fills
        its room)."""
        if not self._groups:
            return np.empty(0, np.float32)
        return np.concatenate([group.threshold for _, _, group in self._groups])

    def add(self, scores, positions):
        """A dense block: scores (nq x n float32) of database ``positions``,
        (n,) shared by every query or (nq x n) per query (< 2**32, any order)."""
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if scores.shape[1] == 0:
            return
        positions = np.asarray(positions)
        _check_positions(positions)
        for lo, hi, group in self._groups:
            group.add_dense(scores[lo:hi], positions if positions.ndim == 1 else positions[lo:hi])

    def add_candidates(self, queries, positions, scores):
        """Chosen entries: query ``queries[i]`` scores ``scores[i]`` at database
        position ``positions[i]``; ``queries`` ascending. Any entry a query's
        top-k could take must be among them (entries below its threshold may be)."""
        queries = np.asarray(queries, dtype=np.int64)
        if queries.size == 0:
            return
        positions = np.asarray(positions)
        _check_positions(positions)
        scores = np.asarray(scores, dtype=np.float32)
        bounds = np.searchsorted(queries, [lo for lo, _, _ in self._groups] + [self.num_queries])
        for (lo, _, group), a, b in zip(self._groups, bounds[:-1], bounds[1:]):
            if b > a:
                group.add_sparse(queries[a:b] - lo, positions[a:b], scores[a:b])

    def result(self):
        """(scores, positions): nq x min(k, entries per query), each row by
        descending score, ties by ascending position. More can be added afterwards."""
        if not self._groups:
            return np.empty((0, 0), np.float32), np.empty((0, 0), np.int64)
        parts = [group.result() for _, _, group in self._groups]
        return np.concatenate([v for v, _ in parts]), np.concatenate([p for _, p in parts])


def _is_run(positions):
    """Whether ``positions`` are consecutive ascending integers."""
    return (
        positions.size > 0
        and positions[-1] - positions[0] == positions.size - 1
        and (positions.size == 1 or bool((np.diff(positions) == 1).all()))
    )


def _threshold_scores(kth_keys):
    scores, _ = decode_keys(kth_keys)
    return np.where(kth_keys == EMPTY, np.float32(-np.inf), scores).astype(np.float32)


class _Reservoirs:
    """The key reservoirs of one group of queries."""

    def __init__(self, num_queries, k, room=None):
        self.k = int(k)
        # room for new keys per query between two cuts; more than k, so that a
        # block cut at its own k-th best fits unless it holds ties at that score
        self.room = int(room) if room else self.k + max(64, self.k // 4)
        # keys per query, on average, beyond k that trigger a cut: a threshold
        # behind the k-th best lets more entries through (more keys here, more
        # rescoring for a filtering scorer); each cut costs one partition
        self.fresh = min(self.room, max(64, self.k // 4))
        self.keys = np.full((num_queries, self.k + self.room), EMPTY, dtype=np.uint64)
        self.fill = np.zeros(num_queries, dtype=np.int64)
        self.threshold = np.full(num_queries, -np.inf, dtype=np.float32)
        self._mask = ReusedBuffer(bool)

    def add_dense(self, scores, positions):
        nq, n = scores.shape
        candidates = self._candidates(scores)
        if n > self.k and np.count_nonzero(candidates) > nq * self.room // 2:  # early blocks
            crowded = np.count_nonzero(candidates, axis=1) > self.room
            if crowded.any():
                self._raise_thresholds(scores, crowded)
                candidates = self._candidates(scores)
        flat = np.flatnonzero(candidates)
        if flat.size == 0:
            return
        counts = np.diff(np.searchsorted(flat, np.arange(nq + 1) * n))  # per query (flat is sorted)
        if positions.ndim == 1 and _is_run(positions):  # consecutive rows: position = first + column
            kept = flat - np.repeat(np.arange(nq) * n - positions[0], counts)
        elif positions.ndim == 1:
            kept = positions[flat - np.repeat(np.arange(nq) * n, counts)]
        else:
            kept = positions.ravel()[flat]
        self._insert(score_keys(scores.ravel()[flat], kept), counts)

    def add_sparse(self, queries, positions, scores):
        above = scores >= self.threshold[queries]
        if not above.all():
            queries, positions, scores = queries[above], positions[above], scores[above]
        if queries.size:
            self._insert(score_keys(scores, positions), np.bincount(queries, minlength=self.fill.size))

    def _candidates(self, scores):
        """Scores at or above their query's threshold (a reused buffer)."""
        return np.greater_equal(scores, self.threshold[:, None], out=self._mask.view(scores.shape))

    def _raise_thresholds(self, scores, crowded):
        """Queries with more than ``room`` candidates in this block alone: the
        block's own k-th best score is at most the final k-th best."""
        n = scores.shape[1]
        if crowded.all():
            kth = np.partition(scores, n - self.k, axis=1)[:, n - self.k]
        else:
            kth = np.full(len(crowded), -np.inf, dtype=np.float32)
            kth[crowded] = np.partition(scores[crowded], n - self.k, axis=1)[:, n - self.k]
        np.maximum(self.threshold, kth, out=self.threshold)

    def _insert(self, keys, counts):
        """Append ``keys`` (grouped by query, ``counts`` per query) to the reservoirs."""
        width = self.keys.shape[1]
        if (self.fill + counts).max() > width:
            self._cut()
        first = np.cumsum(counts) - counts
        overflow = np.flatnonzero(self.fill + counts > width)  # ties at the k-th score
        if overflow.size:
            keep = np.ones(keys.size, dtype=bool)
            for row in overflow:
                segment = slice(first[row], first[row] + counts[row])
                self._merge_row(row, keys[segment])
                keep[segment] = False
            keys, counts = keys[keep], counts.copy()
            counts[overflow] = 0
            first = np.cumsum(counts) - counts
        if keys.size == 0:
            return
        # row r's keys are consecutive: the j-th goes to keys[r, fill[r] + j]
        dest = np.repeat(np.arange(counts.size) * width + self.fill - first, counts)
        dest += np.arange(keys.size)
        self.keys.ravel()[dest] = keys
        self.fill += counts
        if keys.size > counts.size * self.room // 4 or self.fill.mean() > self.k + self.fresh:
            # many keys came in, now or since the last cut: raise the
            # thresholds now rather than at the next overflow, so that the
            # next blocks bring fewer
            self._cut()

    def _cut(self):
        """Keep each query's k smallest keys; its threshold becomes the k-th."""
        width = int(self.fill.max())
        if width < self.k:
            return  # no query has k entries yet
        self.keys[:, :width].partition(self.k - 1, axis=1)
        self.keys[:, self.k : width] = EMPTY
        np.minimum(self.fill, self.k, out=self.fill)
        self.threshold = _threshold_scores(self.keys[:, self.k - 1])

    def _merge_row(self, row, keys):
        """One query whose new keys overflow its reservoir: cut it alone."""
        merged = np.concatenate([self.keys[row, : self.fill[row]], keys])
        if merged.size > self.k:
            merged = np.partition(merged, self.k - 1)[: self.k]
            self.threshold[row] = _threshold_scores(merged.max(keepdims=True))[0]
        self.keys[row, : self.fill[row]] = EMPTY
        self.keys[row, : merged.size] = merged
        self.fill[row] = merged.size

    def result(self):
        self._cut()
        width = int(self.fill.min()) if self.fill.size else 0
        keys = np.sort(self.keys[:, : self.k], axis=1)[:, :width]
        return decode_keys(keys)
