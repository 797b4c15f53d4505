"""Partial result files: one shard's top-k for every query, with provenance.

A partial records what it was computed from (k, shard file, adapter and
selected-ids checksums, query count) so that a stale or truncated file is
detected at merge time instead of merged silently.
"""

import hashlib
import json
import os

import numpy as np

from .arrays import ascii_ids
from .atomic import atomic_output
from .errors import InputError, damaged_file_refused
from .versions import PARTIAL_FORMAT_VERSION as FORMAT_VERSION


def file_digest(path):
    """sha256 of a small file (adapter, selected ids); None when no file."""
    if not path:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def input_records(fingerprints):
    """What a partial was computed from: each input file's size, modification
    time and content fingerprint (fingerprint.py)."""
    records = {}
    for path, fingerprint in fingerprints.items():
        st = os.stat(path)
        records[path] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "fingerprint": fingerprint}
    return records


def save_partial(path, result, query_ids, meta):
    meta = dict(
        meta,
        format_version=FORMAT_VERSION,
        rows_total=result.rows_total,
        rows_kept=result.rows_kept,
        stats=result.stats,
    )
    matched = result.selected_matched
    if matched is not None:
        meta["selected_count"] = int(matched.size)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                scores=result.scores.astype(np.float32, copy=False),
                rows=result.rows.astype(np.int64, copy=False),
                id_rows=result.id_rows.astype(np.int64, copy=False),
                ids=ascii_ids(result.ids),
                query_ids=np.asarray(query_ids, dtype=str),
                # bit i: selected id i (sorted) matched a row of this shard
                selected_matched=np.packbits(matched) if matched is not None else np.empty(0, np.uint8),
                meta=np.array(json.dumps(meta)),
            )


def selected_matched(path, meta, arrays):
    """The bool array of which selected ids matched a row of this partial's shard."""
    return np.unpackbits(arrays["selected_matched"], count=meta["selected_count"]).astype(bool)


def load_partial(path, keys=("scores", "rows")):
    """Load chosen arrays and the metadata; a damaged file gets a clear error."""
    with damaged_file_refused(path, "partial result", "Snakemake searches only that shard again"):
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {key: data[key] for key in keys}
    return meta, arrays


def partial_problem(path, meta, expected, query_fingerprints=None):
    """Why a partial does not fit the settings now configured (None: it fits).
    ``query_fingerprints`` ({path: fingerprint} of the query files now) catches
    queries whose ids stayed but whose features changed."""
    wrong = {key: (meta.get(key), value) for key, value in expected.items() if meta.get(key) != value}
    if meta.get("format_version") != FORMAT_VERSION:
        wrong["format_version"] = (meta.get("format_version"), FORMAT_VERSION)
    details = [f"{key}: file has {have!r}, expected {want!r}" for key, (have, want) in wrong.items()]
    recorded = meta.get("inputs") or {}
    for query_path, fingerprint in (query_fingerprints or {}).items():
        if (recorded.get(query_path) or {}).get("fingerprint") != fingerprint:
            details.append(f"queries: not the current content of {query_path}")
    if not details:
        return None
    return (
        f"{path}: partial result was computed with other settings ({', '.join(details)}). "
        f"Delete it and run again: Snakemake searches that shard again."
    )


def check_partial_meta(path, meta, expected, query_fingerprints=None):
    """Refuse a partial computed from other settings than the ones now configured."""
    problem = partial_problem(path, meta, expected, query_fingerprints)
    if problem:
        raise InputError(problem)


def check_partials(expected, query_fingerprints=None):
    """Every partial of ``expected`` ({path: metadata it must carry}) checked
    before any is merged: one error naming all that do not fit."""
    problems = []
    for path, values in expected.items():
        meta, _ = load_partial(path, keys=())
        problems.append(partial_problem(path, meta, values, query_fingerprints))
    problems = [p for p in problems if p]
    if problems:
        raise InputError("\n".join(problems))
