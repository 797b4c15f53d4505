"""Merge per-shard partial top-k files into one top-k, in memory proportional to
queries x k (one partial is held at a time)."""

import logging

import numpy as np
import torch

from .errors import InputError
from .merged import ROW_BITS, MergedResult
from .partials import check_partial_meta, load_partial
from .topk import merge_sorted

log = logging.getLogger(__name__)


def merge_partials(paths, k, expected_meta=None):
    """Top-k over all partials; ``paths`` in database order (positives, then shards).

    ``expected_meta`` maps a path to the metadata values it must carry.
    """
    if not paths:
        raise InputError("merge: no partial results given.")
    *_, merged = iter_merged_prefixes(paths, k, expected_meta, stops=[len(paths)])
    return merged


def iter_merged_prefixes(paths, k, expected_meta=None, stops=None):
    """Yield the merged top-k of the first n partials for each n in ``stops``
    (ascending; default: only all of them), merging each partial once."""
    expected_meta = expected_meta or {}
    stops = set(stops or [len(paths)])
    vals = pos = query_ids = query_sets = None
    rows_kept, shards = 0, []
    for ordinal, path in enumerate(paths):
        meta, arrays = load_partial(path, keys=("scores", "rows", "query_ids"))
        check_partial_meta(path, meta, expected_meta.get(path, {}))
        if query_ids is None:
            query_ids, query_sets = arrays["query_ids"], meta.get("query_sets")
            vals = torch.empty((len(query_ids), 0), dtype=torch.float32)
            pos = torch.empty((len(query_ids), 0), dtype=torch.int64)
        elif not np.array_equal(query_ids, arrays["query_ids"]):
            raise InputError(
                f"{path}: computed for other queries than {paths[0]}. "
                "Delete the stale partials of this model and run again."
            )
        rows_kept += meta["rows_kept"]
        shards.append({"partial": str(path), "shard": meta.get("shard"), "rows_kept": meta["rows_kept"],
                       "rows_total": meta.get("rows_total")})
        new_pos = torch.from_numpy(arrays["rows"]) | (ordinal << ROW_BITS)
        vals, pos = merge_sorted(vals, pos, torch.from_numpy(arrays["scores"]), new_pos, k)
        if ordinal + 1 in stops:
            meta = {"k": k, "rows_kept": rows_kept, "shards": list(shards),
                    "query_sets": query_sets or [["image", 0, len(query_ids)]]}
            yield _finish(paths, query_ids, vals, pos, meta)


def _finish(paths, query_ids, vals, pos, meta):
    if meta["rows_kept"] == 0:
        raise InputError(
            "merge: the database is empty after filtering (0 rows kept in "
            f"{len(meta['shards'])} shard(s)). Check selected_ids and the feature files."
        )
    if meta["k"] > meta["rows_kept"]:
        log.info("k=%d is larger than the database (%d rows): returning all of it.",
                 meta["k"], meta["rows_kept"])
    pos = pos.numpy()
    unique_pos, ranks = np.unique(pos, return_inverse=True)
    db_ids = _ids_of_positions(paths, unique_pos)
    _refuse_duplicate_ids(db_ids, unique_pos, meta)
    return MergedResult(query_ids, db_ids, vals.numpy(), ranks.reshape(pos.shape), meta, unique_pos)


def _refuse_duplicate_ids(db_ids, positions, meta):
    """Two database rows with one id would collapse in the JSON output and make
    evaluation ambiguous. Only retrieved ids are compared (no full-index read)."""
    uniq, first, counts = np.unique(db_ids, return_index=True, return_counts=True)
    if counts.max(initial=1) <= 1:
        return
    dup = str(uniq[np.argmax(counts)])
    where = [(meta["shards"][p >> ROW_BITS]["shard"], int(p & ((1 << ROW_BITS) - 1)))
             for p in positions[db_ids == dup].tolist()]
    raise InputError(
        f"database id {dup!r} appears {len(where)} times among the results, at (file, row) {where[:4]} "
        f"({int((counts > 1).sum())} duplicated id(s) in all). Ids must be unique: remove the duplicate "
        "rows, or the file that was listed twice."
    )


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
