"""A model's merged top-k (the result of merge_shards), and its file. Kept free
of torch so that formatting and evaluation jobs start fast."""

import json
from dataclasses import dataclass

import numpy as np

from .arrays import unique_inverse
from .atomic import atomic_output

ROW_BITS = 40  # global position = shard ordinal << 40 | row (rows < 1.1e12 per file)


@dataclass
class MergedResult:
    query_ids: np.ndarray  # nq str
    db_ids: np.ndarray  # unique retrieved ids, in database order (str; ascii bytes from merge_partials(ids_as_bytes=True))
    sims: np.ndarray  # nq x k float32, rows sorted by descending score
    ranks: np.ndarray  # nq x k int64 indexing db_ids
    meta: dict  # k, rows_kept, shards (partial and shard file per ordinal), query_sets
    db_positions: np.ndarray | None = None  # global position (ordinal << ROW_BITS | row) of each db id

    def query_set(self, name):
        """The results of one query set (image or text), db ids restricted to its hits."""
        sets = self.meta.get("query_sets") or [["image", 0, len(self.query_ids)]]
        start, stop = next((a, b) for set_name, a, b in sets if set_name == name)
        meta = dict(self.meta, query_sets=[[name, 0, stop - start]])
        if (start, stop) == (0, len(self.query_ids)):  # every db id is some query's hit already
            return MergedResult(self.query_ids, self.db_ids, self.sims, self.ranks, meta, self.db_positions)
        used, ranks = unique_inverse(self.ranks[start:stop])
        positions = self.db_positions[used] if self.db_positions is not None else None
        return MergedResult(self.query_ids[start:stop], self.db_ids[used], self.sims[start:stop],
                            ranks, meta, positions)

    def shard_rows(self, positions):
        """(shard file, row) of global positions: where each vector is stored."""
        ordinal, row = positions >> ROW_BITS, positions & ((1 << ROW_BITS) - 1)
        return [self.meta["shards"][o]["shard"] for o in ordinal.tolist()], row


def save_merged(path, merged):
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                query_ids=merged.query_ids,
                db_ids=np.asarray(merged.db_ids, dtype="S"),  # ascii: a quarter of str's bytes
                sims=merged.sims,
                ranks=merged.ranks,
                db_positions=merged.db_positions,
                meta=np.array(json.dumps(merged.meta)),
            )


def load_merged(path):
    with np.load(path, allow_pickle=False) as data:
        return MergedResult(
            data["query_ids"], data["db_ids"].astype(str), data["sims"], data["ranks"],
            json.loads(str(data["meta"])), data["db_positions"],
        )
