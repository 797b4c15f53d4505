"""Query expansion: q' = normalize((q + s_1 x_1 + ... + s_n x_n) / (n + 1)).

q is the (adapted) query, x_i its i-th nearest (adapted) database vector and
s_i their score, all from the first search. The neighbour vectors are read
back from exactly the shard file and row the first search found them in, so
the selection and unequal shard sizes cannot shift them; only those rows are
read.
"""

import logging
from collections import defaultdict

import numpy as np

from . import features
from .adapter import check_adapter_dim
from .arrays import unique_inverse

log = logging.getLogger(__name__)


def read_rows(path, rows):
    """float32 features of the given rows of one feature file (any order, repeats allowed)."""
    unique, inverse = unique_inverse(np.asarray(rows, dtype=np.int64))
    with features.open_feature_file(path) as handle:
        features.check_header(handle, path)
        try:
            block = handle["features"][unique]  # h5py reads increasing row lists directly
        except OSError as exc:
            raise features.corrupt_error(path, f"{len(unique)} neighbour rows", exc) from exc
    feats = np.asarray(block, dtype=np.float32)
    features.check_finite(feats, path, first_row=0)
    log.info("%s: read %d neighbour rows", path, len(unique))
    return feats[inverse]


def neighbour_vectors(merged, n, adapter=None, adapter_path=None):
    """(nq x n x d) adapted vectors and (nq x n) scores of each query's top n."""
    n = min(n, merged.ranks.shape[1])
    positions = merged.db_positions[merged.ranks[:, :n]].ravel()
    shard_paths, rows = merged.shard_rows(positions)
    by_shard = defaultdict(list)
    for i, path in enumerate(shard_paths):
        by_shard[path].append(i)
    dim = None
    vectors = None
    for path, where in by_shard.items():
        where = np.asarray(where)
        x = read_rows(path, rows[where])
        if adapter is not None:
            check_adapter_dim(adapter, x.shape[1], adapter_path, path)
            x = adapter.apply_numpy(x)
        if vectors is None:
            dim = x.shape[1]
            vectors = np.empty((len(positions), dim), dtype=np.float32)
        vectors[where] = x
    nq = merged.ranks.shape[0]
    return vectors.reshape(nq, n, dim), merged.sims[:, :n]


def expand(queries, neighbours, scores):
    """Expanded, L2-normalised queries (float32) from adapted queries (nq x d),
    neighbour vectors (nq x n x d) and their scores (nq x n); computed in float64."""
    q = np.asarray(queries, dtype=np.float64)
    weighted = np.einsum("qn,qnd->qd", np.asarray(scores, np.float64), np.asarray(neighbours, np.float64))
    expanded = (q + weighted) / (scores.shape[1] + 1)
    expanded /= np.linalg.norm(expanded, axis=1, keepdims=True)
    return expanded.astype(np.float32)
