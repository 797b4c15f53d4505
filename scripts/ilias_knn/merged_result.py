"""A model's merged top-k (the result of merge_shards), and its file. Kept free
of torch so that formatting and evaluation jobs start fast.

Database positions number a model's database once: the positives' rows, then
each distractor file's rows, in order (``meta["shards"]`` holds each file's
first position). Scores are ordered by them on ties (topk.py).
"""

import json
from dataclasses import dataclass

import numpy as np

from .arrays import unique_inverse
from .atomic import atomic_output
from .errors import InputError, damaged_file_refused
from .versions import MERGED_FORMAT_VERSION as FORMAT_VERSION


@dataclass
class MergedResult:
    query_ids: np.ndarray  # nq str
    db_ids: np.ndarray  # retrieved ids (ascii bytes), in database order
    sims: np.ndarray  # nq x k float32, rows sorted by descending score
    ranks: np.ndarray  # nq x k int64 indexing db_ids
    meta: dict  # k, rows_kept, shards (partial, shard file, first_position per shard), query_sets
    db_positions: np.ndarray  # database position of each db id

    def query_set(self, name):
        """The results of one query set (image or text), db ids restricted to its hits."""
        sets = self.meta.get("query_sets") or [["image", 0, len(self.query_ids)]]
        start, stop = next((a, b) for set_name, a, b in sets if set_name == name)
        meta = dict(self.meta, query_sets=[[name, 0, stop - start]])
        if (start, stop) == (0, len(self.query_ids)):  # every db id is some query's hit already
            return MergedResult(self.query_ids, self.db_ids, self.sims, self.ranks, meta, self.db_positions)
        used, ranks = unique_inverse(self.ranks[start:stop])
        return MergedResult(
            self.query_ids[start:stop], self.db_ids[used], self.sims[start:stop], ranks, meta, self.db_positions[used]
        )

    def shard_rows(self, positions):
        """(shard file of each position, row in it): where each vector is stored."""
        first = np.array([shard["first_position"] for shard in self.meta["shards"]], dtype=np.int64)
        ordinal = np.searchsorted(first, positions, side="right") - 1
        return [self.meta["shards"][o]["shard"] for o in ordinal.tolist()], positions - first[ordinal]


def save_merged(path, merged):
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                query_ids=merged.query_ids,
                db_ids=np.asarray(merged.db_ids, dtype="S"),
                sims=merged.sims,
                ranks=merged.ranks,
                db_positions=merged.db_positions,
                meta=np.array(json.dumps(dict(merged.meta, format_version=FORMAT_VERSION))),
            )


def load_merged(path):
    with damaged_file_refused(path, "merged result", "Snakemake merges it again"):
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format_version") != FORMAT_VERSION:
                raise InputError(
                    f"{path}: merged result from another version of this workflow. "
                    "Delete it and run again: Snakemake merges it again."
                )
            return MergedResult(
                data["query_ids"], data["db_ids"], data["sims"], data["ranks"], meta, data["db_positions"]
            )
