"""Merge per-shard partial top-k files into one top-k, in memory proportional to
queries x k (one partial is held at a time)."""

import json
import logging
from dataclasses import dataclass

import numpy as np
import torch

from .atomic import atomic_output
from .errors import InputError
from .partials import check_partial_meta, load_partial
from .topk import merge_sorted

log = logging.getLogger(__name__)

ROW_BITS = 40  # global position = shard ordinal << 40 | row (rows < 1.1e12 per file)


@dataclass
class MergedResult:
    query_ids: np.ndarray  # nq str
    db_ids: np.ndarray  # unique retrieved ids, in database order
    sims: np.ndarray  # nq x k float32, rows sorted by descending score
    ranks: np.ndarray  # nq x k int64 indexing db_ids
    meta: dict


def merge_partials(paths, k, expected_meta=None):
    """Top-k over all partials; ``paths`` in database order (positives, then shards).

    ``expected_meta`` maps a path to the metadata values it must carry.
    """
    if not paths:
        raise InputError("merge: no partial results given.")
    expected_meta = expected_meta or {}
    vals = pos = query_ids = None
    rows_kept, shards = 0, []
    for ordinal, path in enumerate(paths):
        meta, arrays = load_partial(path, keys=("scores", "rows", "query_ids"))
        check_partial_meta(path, meta, expected_meta.get(path, {}))
        if query_ids is None:
            query_ids = arrays["query_ids"]
            vals = torch.empty((len(query_ids), 0), dtype=torch.float32)
            pos = torch.empty((len(query_ids), 0), dtype=torch.int64)
        elif not np.array_equal(query_ids, arrays["query_ids"]):
            raise InputError(
                f"{path}: computed for other queries than {paths[0]}. "
                "Delete the stale partials of this model and run again."
            )
        rows_kept += meta["rows_kept"]
        shards.append({"partial": str(path), "shard": meta.get("shard"), "rows_kept": meta["rows_kept"]})
        new_pos = torch.from_numpy(arrays["rows"]) | (ordinal << ROW_BITS)
        vals, pos = merge_sorted(vals, pos, torch.from_numpy(arrays["scores"]), new_pos, k)
    if rows_kept == 0:
        raise InputError(
            "merge: the database is empty after filtering (0 rows kept in "
            f"{len(paths)} shard(s)). Check selected_ids and the feature files."
        )
    if k > rows_kept:
        log.info("k=%d is larger than the database (%d rows): returning all of it.", k, rows_kept)
    pos = pos.numpy()
    unique_pos, ranks = np.unique(pos, return_inverse=True)
    db_ids = _ids_of_positions(paths, unique_pos)
    meta = {"k": k, "rows_kept": rows_kept, "shards": shards}
    return MergedResult(query_ids, db_ids, vals.numpy(), ranks.reshape(pos.shape), meta)


def _ids_of_positions(paths, unique_pos):
    """Ids of sorted global positions, reading each partial's id table once."""
    ids = np.empty(len(unique_pos), dtype=object)
    ordinals = unique_pos >> ROW_BITS
    rows = unique_pos & ((1 << ROW_BITS) - 1)
    for ordinal in np.unique(ordinals):
        sel = np.flatnonzero(ordinals == ordinal)
        _, arrays = load_partial(paths[ordinal], keys=("id_rows", "ids"))
        where = np.searchsorted(arrays["id_rows"], rows[sel])
        ids[sel] = arrays["ids"][where]
    return np.char.decode(ids.astype(bytes), "ascii")


def save_merged(path, merged):
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                query_ids=merged.query_ids,
                db_ids=merged.db_ids,
                sims=merged.sims,
                ranks=merged.ranks,
                meta=np.array(json.dumps(merged.meta)),
            )


def load_merged(path):
    with np.load(path, allow_pickle=False) as data:
        return MergedResult(
            data["query_ids"], data["db_ids"], data["sims"], data["ranks"],
            json.loads(str(data["meta"])),
        )
