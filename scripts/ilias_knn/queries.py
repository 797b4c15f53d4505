"""Query sets of a model: image queries, optionally text queries, searched in
one pass (one matrix) so that every shard is read once for all of them."""

import json
from dataclasses import dataclass

import numpy as np

from . import features
from .arrays import repeated_values
from .atomic import atomic_output
from .errors import InputError, damaged_file_refused


@dataclass
class Queries:
    feats: np.ndarray  # nq x d float32; adapted already when ``adapted``
    ids: np.ndarray  # nq str
    sets: list  # [[name, start, stop], ...]: rows of each query set
    adapted: bool = False


def check_query_dims(path, name, dim, first_path, first_dim):
    """Every query set of a model must have the first one's dimension."""
    if dim != first_dim:
        raise InputError(
            f"{path}: {name} queries are {dim}-d but {first_path} has {first_dim}-d queries. "
            "Both query files of a model must come from the same model (same embedding space)."
        )


def check_query_set_ids(ids, path):
    """A query set needs rows, each with its own id."""
    if len(ids) == 0:
        raise InputError(
            f"{path}: holds no queries (0 rows). Point the config at the query features "
            "written by the feature extraction, or re-extract them."
        )
    check_unique_query_ids(ids, path)


def check_query_norms(feats, path):
    """A query row of zero norm is a failed extraction (ILIAS queries are
    L2-normalised): it would score 0 against everything, and its results and AP
    would look like those of a bad model."""
    zero = np.flatnonzero(~np.any(feats != 0, axis=1))
    if zero.size:
        raise InputError(
            f"{path}: {zero.size} query row(s) of zero norm (first at rows {zero[:5].tolist()}), "
            "a failed feature extraction. Extract those queries again."
        )


def read_query_file(path):
    """A query file's ids, checked as the jobs check the file (before they run)."""
    _, feats, ids = features.read_all(path)
    check_query_set_ids(ids, path)
    check_query_norms(feats, path)
    return ids


def check_unique_query_ids(ids, path):
    """A query set's ids must be unique: the result files are keyed by query
    id, so a repeated id would silently keep one of its queries' results."""
    repeated = repeated_values(ids)
    if repeated.size == 0:
        return
    first = repeated[0].decode("ascii")  # repeated values come back as ASCII bytes, sorted
    rows = np.flatnonzero(np.asarray(ids, dtype=str) == first).tolist()
    raise InputError(
        f"{path}: query id {first!r} appears {len(rows)} times (rows {rows[:4]}; {repeated.size} "
        "repeated id(s) in all). Results are keyed by query id: give each query its own id, or "
        "remove the repeated rows."
    )


def read_query_sets(paths):
    """Read ``{set name: HDF5 path}`` (image first) into one float32 matrix."""
    feats, ids, sets, start = [], [], [], 0
    first_path = None
    for name, path in paths.items():
        _, set_feats, set_ids = features.read_all(path)
        check_query_set_ids(set_ids, path)
        check_query_norms(set_feats, path)
        if first_path is not None:
            check_query_dims(path, name, set_feats.shape[1], first_path, feats[0].shape[1])
        first_path = first_path or path
        feats.append(set_feats)
        ids.append(set_ids)
        sets.append([name, start, start + len(set_ids)])
        start += len(set_ids)
    return Queries(np.concatenate(feats), np.concatenate(ids), sets)


def read_model_queries(image_path, text_path=None):
    """A model's query sets: image queries, then text queries when given."""
    paths = {"image": image_path}
    if text_path:
        paths["text"] = text_path
    return read_query_sets(paths)


def save_queries(path, queries):
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                feats=queries.feats.astype(np.float32, copy=False),
                ids=np.asarray(queries.ids, dtype=str),
                meta=np.array(json.dumps({"sets": queries.sets, "adapted": queries.adapted})),
            )


def load_queries(path):
    with damaged_file_refused(path, "expanded query file", "Snakemake expands the queries again"):
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return Queries(data["feats"], data["ids"], meta["sets"], meta["adapted"])
