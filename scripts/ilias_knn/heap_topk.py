"""Exact running top-k on the CPU: float32 scores from numpy's BLAS, selected
by faiss's per-query heaps (C++, one comparison per score; only scores above
a query's current k-th best enter its heap).

Tie order (equal scores: lower database position first) is kept: a heap
accepts only scores strictly above its top, so a later, equal score loses; and
among equal scores inside a heap, faiss evicts the smaller id first, so ids
are stored as -position - 2 (the lower position, the larger id; -1 stays the
heap's "empty" marker).
"""

import faiss
import numpy as np


def _ids_of(positions):
    return -np.asarray(positions, dtype=np.int64) - 2


class HeapTopK:
    def __init__(self, num_queries, k):
        self.k = k
        self._heap = faiss.ResultHeap(num_queries, k, keep_max=True)

    def add(self, scores, positions):
        """Scores (nq x n float32) of database ``positions``: (n,) shared by every
        query, or (nq x n) per query. Positions must come after every position
        added before (ascending within a row where they tie)."""
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if scores.shape[1] == 0:
            return
        ids = np.ascontiguousarray(_ids_of(positions))
        stride = 0 if ids.ndim == 1 else ids.shape[1]  # 0: one ids row for all queries
        self._heap.heaps.addn_with_ids(scores.shape[1], faiss.swig_ptr(scores), faiss.swig_ptr(ids), stride)

    def result(self):
        """(values, positions): nq x min(k, entries per query), rows by descending
        score, ties by ascending position. The heaps are left as they are, so more
        can be added afterwards."""
        nq, k = self._heap.D.shape
        done = faiss.ResultHeap(nq, k, keep_max=True)  # a copy, sorted by faiss (C++)
        done.D[:], done.I[:] = self._heap.D, self._heap.I
        done.heaps.reorder()  # descending score; equal scores by descending id = ascending position
        width = int((done.I[0] != -1).sum()) if nq else 0
        return done.D[:, :width].astype(np.float32), -done.I[:, :width] - 2


def block_scores(queries, x):
    """float32 scores of queries (nq x d) against rows x (n x d), through numpy's
    BLAS: torch's MKL takes a slow path on AMD CPUs (85 vs 126 GFLOP/s measured
    on this project's 2-core EPYC); the products are float32 either way."""
    return np.matmul(queries, x.T)
