"""Query sets of a model: image queries, optionally text queries, searched in
one pass (one matrix) so that every shard is read once for all of them."""

import json
from dataclasses import dataclass

import numpy as np

from . import features
from .atomic import atomic_output
from .errors import InputError

IMAGE, TEXT = "image", "text"


@dataclass
class Queries:
    feats: np.ndarray  # nq x d float32; adapted already when ``adapted``
    ids: np.ndarray  # nq str
    sets: list  # [[name, start, stop], ...]: rows of each query set
    adapted: bool = False

    def rows_of(self, name):
        for set_name, start, stop in self.sets:
            if set_name == name:
                return slice(start, stop)
        raise KeyError(f"no query set {name!r} (have {[s[0] for s in self.sets]})")


def read_query_sets(paths):
    """Read ``{set name: HDF5 path}`` (image first) into one float32 matrix."""
    feats, ids, sets, start = [], [], [], 0
    first_path = None
    for name, path in paths.items():
        _, set_feats, set_ids = features.read_all(path)
        if first_path is not None and set_feats.shape[1] != feats[0].shape[1]:
            raise InputError(
                f"{path}: {name} queries are {set_feats.shape[1]}-d but {first_path} has "
                f"{feats[0].shape[1]}-d queries. Both query files of a model must come from the "
                "same model (same embedding space)."
            )
        first_path = first_path or path
        feats.append(set_feats)
        ids.append(set_ids)
        sets.append([name, start, start + len(set_ids)])
        start += len(set_ids)
    return Queries(np.concatenate(feats), np.concatenate(ids), sets)


def read_model_queries(image_path, text_path=None):
    """A model's query sets: image queries, then text queries when given."""
    paths = {IMAGE: image_path}
    if text_path:
        paths[TEXT] = text_path
    return read_query_sets(paths)


def save_queries(path, queries):
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, feats=queries.feats.astype(np.float32, copy=False),
                     ids=np.asarray(queries.ids, dtype=str),
                     meta=np.array(json.dumps({"sets": queries.sets, "adapted": queries.adapted})))


def load_queries(path):
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        return Queries(data["feats"], data["ids"], meta["sets"], meta["adapted"])
