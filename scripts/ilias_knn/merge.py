"""Merge per-shard partial top-k files into one top-k, in memory proportional to
queries x k (one partial is held at a time)."""

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .arrays import repeated_values, unique_inverse
from .errors import InputError
from .merged import ROW_BITS, MergedResult
from .partials import check_partial_meta, load_partial
from .reservoir_topk import MAX_POSITION, ReservoirTopK

log = logging.getLogger(__name__)


def merge_partials(paths, k, expected_meta=None, ids_as_bytes=False):
    """Top-k over all partials; ``paths`` in database order (positives, then shards).

    ``expected_meta`` maps a path to the metadata values it must carry.
    ``ids_as_bytes``: db_ids as the ASCII bytes they are stored as (what
    save_merged writes; saves two conversions of every retrieved id) instead of str.
    """
    if not paths:
        raise InputError("merge: no partial results given.")
    *_, merged = iter_merged_prefixes(paths, k, expected_meta, stops=[len(paths)], ids_as_bytes=ids_as_bytes)
    return merged


def iter_merged_prefixes(paths, k, expected_meta=None, stops=None, ids_as_bytes=False):
    """Yield the merged top-k of the first n partials for each n in ``stops``
    (ascending; default: only all of them), merging each partial once."""
    expected_meta = expected_meta or {}
    stops = set(stops or [len(paths)])
    topk = query_ids = query_sets = None
    rows_kept, shards = 0, []
    offsets = [0]  # database position of each partial's row 0 (positives, then shard order)
    for ordinal, (path, (meta, arrays)) in enumerate(zip(paths, _prefetched(paths))):
        check_partial_meta(path, meta, expected_meta.get(path, {}))
        if query_ids is None:
            query_ids, query_sets = arrays["query_ids"], meta.get("query_sets")
            topk = ReservoirTopK(len(query_ids), k)
        elif not np.array_equal(query_ids, arrays["query_ids"]):
            raise InputError(
                f"{path}: computed for other queries than {paths[0]}. "
                "Delete the stale partials of this model and run again."
            )
        rows_kept += meta["rows_kept"]
        shards.append({"partial": str(path), "shard": meta.get("shard"), "rows_kept": meta["rows_kept"],
                       "rows_total": meta.get("rows_total")})
        offsets.append(offsets[-1] + meta["rows_total"])
        if offsets[-1] > MAX_POSITION + 1:
            raise InputError(f"merge: more than {MAX_POSITION + 1} database rows in one model; "
                             "split the model's database into several models.")
        # database order is partial order, then row: one position numbering over all partials
        topk.add(arrays["scores"], arrays["rows"] + offsets[ordinal])
        if ordinal + 1 in stops:
            meta = {"k": k, "rows_kept": rows_kept, "shards": list(shards),
                    "query_sets": query_sets or [["image", 0, len(query_ids)]]}
            yield _finish(paths, query_ids, *topk.result(), offsets, meta, ids_as_bytes)


def _global_positions(positions, offsets):
    """Positions numbered over all partials -> ordinal << ROW_BITS | row."""
    offsets = np.asarray(offsets, dtype=np.int64)
    ordinal = np.searchsorted(offsets, positions, side="right") - 1
    return (ordinal << ROW_BITS) | (positions - offsets[ordinal])


def _prefetched(paths):
    """Partials in order, the next one read (I/O, zip checksums) while this one is merged."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        load = lambda path: load_partial(path, keys=("scores", "rows", "query_ids"))
        pending = pool.submit(load, paths[0]) if paths else None
        for nxt in [*paths[1:], None]:
            current = pending.result()
            pending = pool.submit(load, nxt) if nxt is not None else None
            yield current


def _finish(paths, query_ids, vals, pos, offsets, meta, ids_as_bytes=False):
    if meta["rows_kept"] == 0:
        raise InputError(
            "merge: the database is empty after filtering (0 rows kept in "
            f"{len(meta['shards'])} shard(s)). Check selected_ids and the feature files."
        )
    if meta["k"] > meta["rows_kept"]:
        log.info("k=%d is larger than the database (%d rows): returning all of it.",
                 meta["k"], meta["rows_kept"])
    unique_pos, ranks = unique_inverse(pos, bound=offsets[-1])  # on the compact numbering
    unique_pos = _global_positions(unique_pos, offsets)
    db_ids = _ids_of_positions(paths, unique_pos)  # ascii bytes
    _refuse_duplicate_ids(db_ids, unique_pos, meta)
    db_ids = db_ids if ids_as_bytes else db_ids.astype(str)  # one C-level cast
    return MergedResult(query_ids, db_ids, vals, ranks, meta, unique_pos)


def _refuse_duplicate_ids(db_ids, positions, meta):
    """Two database rows with one id would collapse in the JSON output and make
    evaluation ambiguous. Only retrieved ids are compared (no full-index read)."""
    repeated = repeated_values(db_ids)
    if repeated.size == 0:
        return
    uniq, counts = np.unique(db_ids[np.isin(db_ids, repeated)], return_counts=True)
    dup = uniq[np.argmax(counts)]
    where = [(meta["shards"][p >> ROW_BITS]["shard"], int(p & ((1 << ROW_BITS) - 1)))
             for p in positions[db_ids == dup].tolist()]
    dup = dup.decode("ascii", "replace") if isinstance(dup, bytes) else str(dup)
    raise InputError(
        f"database id {dup!r} appears {len(where)} times among the results, at (file, row) {where[:4]} "
        f"({int((counts > 1).sum())} duplicated id(s) in all). Ids must be unique: remove the duplicate "
        "rows, or the file that was listed twice."
    )


def _ids_of_positions(paths, unique_pos):
    """Ids (ascii bytes) of sorted global positions, reading each partial's id table once."""
    ordinals = unique_pos >> ROW_BITS
    rows = unique_pos & ((1 << ROW_BITS) - 1)
    # positions are sorted, so each partial's entries are one contiguous run
    bounds = np.searchsorted(ordinals, np.arange(len(paths) + 1))
    pieces = []
    for ordinal, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if lo == hi:
            continue
        _, arrays = load_partial(paths[ordinal], keys=("id_rows", "ids"))
        pieces.append(arrays["ids"][np.searchsorted(arrays["id_rows"], rows[lo:hi])])
    if not pieces:
        return np.empty(0, dtype="S1")
    return np.concatenate(pieces)
