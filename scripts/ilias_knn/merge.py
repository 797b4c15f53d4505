"""Merge per-shard partial top-k files into one top-k, in memory proportional to
queries x k (one partial is held at a time)."""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .arrays import repeated_values, unique_inverse
from .errors import InputError
from .merged_result import MergedResult
from .partials import check_partial_meta, load_partial
from .topk import MAX_POSITION, TopK

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
    topk = query_ids = query_sets = None
    rows_kept, shards = 0, []
    first_position = 0  # of each partial's row 0 in the database (merged_result.py)
    for ordinal, (path, (meta, arrays)) in enumerate(zip(paths, _prefetched(paths))):
        check_partial_meta(path, meta, expected_meta.get(path, {}))
        if query_ids is None:
            query_ids, query_sets = arrays["query_ids"], meta.get("query_sets")
            topk = TopK(len(query_ids), k)
        elif not np.array_equal(query_ids, arrays["query_ids"]):
            raise InputError(
                f"{path}: computed for other queries than {paths[0]}. Delete the partials of "
                f"this model ({os.path.join(os.path.dirname(str(paths[0])), '*.npz')}) and run again."
            )
        rows_kept += meta["rows_kept"]
        stats = meta.get("stats", {})
        shards.append(
            {
                "partial": str(path),
                "shard": meta.get("shard"),
                "rows_kept": meta["rows_kept"],
                "rows_total": meta["rows_total"],
                "first_position": first_position,
                "zero_norm_rows": stats.get("zero_norm_rows", 0),
                "first_zero_norm_rows": stats.get("first_zero_norm_rows", []),
            }
        )
        if first_position + meta["rows_total"] > MAX_POSITION + 1:
            raise InputError(
                f"merge: more than {MAX_POSITION + 1} database rows in one model; "
                "split the model's database into several models."
            )
        topk.add(arrays["scores"], arrays["rows"] + first_position)
        first_position += meta["rows_total"]
        if ordinal + 1 in stops:
            meta = {
                "k": k,
                "rows_kept": rows_kept,
                "shards": list(shards),
                "query_sets": query_sets or [["image", 0, len(query_ids)]],
            }
            yield _finish(paths, query_ids, *topk.result(), first_position, meta)


def _prefetched(paths):
    """Partials in order, the next one read (I/O, zip checksums) while this one is merged."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        load = lambda path: load_partial(path, keys=("scores", "rows", "query_ids"))
        pending = pool.submit(load, paths[0]) if paths else None
        for nxt in [*paths[1:], None]:
            current = pending.result()
            pending = pool.submit(load, nxt) if nxt is not None else None
            yield current


def _finish(paths, query_ids, vals, pos, database_rows, meta):
    if meta["rows_kept"] == 0:
        raise InputError(
            "merge: the database is empty after filtering (0 rows kept in "
            f"{len(meta['shards'])} shard(s)). Check selected_ids and the feature files."
        )
    if meta["k"] > meta["rows_kept"]:
        log.info("k=%d is larger than the database (%d rows): returning all of it.", meta["k"], meta["rows_kept"])
    positions, ranks = unique_inverse(pos, bound=database_rows)
    merged = MergedResult(query_ids, None, vals, ranks, meta, positions)
    merged.db_ids = _ids_of_positions(paths, merged)
    _refuse_duplicate_ids(merged)
    return merged


def _refuse_duplicate_ids(merged):
    """Two database rows with one id would collapse in the JSON output and make
    evaluation ambiguous. Only retrieved ids are compared (no full-index read)."""
    db_ids = merged.db_ids
    repeated = repeated_values(db_ids)
    if repeated.size == 0:
        return
    uniq, counts = np.unique(db_ids[np.isin(db_ids, repeated)], return_counts=True)
    dup = uniq[np.argmax(counts)]
    files, rows = merged.shard_rows(merged.db_positions[db_ids == dup])
    where = list(zip(files, rows.tolist()))
    raise InputError(
        f"database id {dup.decode('ascii', 'replace')!r} appears {len(where)} times among the results, at "
        f"(file, row) {where[:4]} ({int((counts > 1).sum())} duplicated id(s) in all). Ids must be unique: "
        "remove the duplicate rows, or the file that was listed twice."
    )


def _ids_of_positions(paths, merged):
    """Ids (ascii bytes) of the sorted retrieved positions, reading each partial's id table once."""
    first = np.array([shard["first_position"] for shard in merged.meta["shards"]], dtype=np.int64)
    positions = merged.db_positions
    bounds = np.searchsorted(positions, np.r_[first, np.iinfo(np.int64).max])  # each partial's run
    pieces = []
    for ordinal, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if lo == hi:
            continue
        _, arrays = load_partial(paths[ordinal], keys=("id_rows", "ids"))
        pieces.append(arrays["ids"][np.searchsorted(arrays["id_rows"], positions[lo:hi] - first[ordinal])])
    return np.concatenate(pieces) if pieces else np.empty(0, dtype="S1")
