"""Partial result files: one shard's top-k for every query, with provenance.

A partial records what it was computed from (k, shard file, adapter and
selected-ids checksums, query count) so that a stale or truncated file is
detected at merge time instead of merged silently.
"""

import hashlib
import json
import zipfile
import numpy as np

from .arrays import ascii_ids
from .atomic import atomic_output
from .errors import InputError

FORMAT_VERSION = 1  # search_shard passes it as a param: a new format reruns the searches


def file_digest(path):
    """sha256 of a small file (adapter, selected ids); None when no file."""
    if not path:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_partial(path, result, query_ids, meta):
    meta = dict(meta, format_version=FORMAT_VERSION, rows_total=result.rows_total,
                rows_kept=result.rows_kept, stats=result.stats)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                scores=result.scores.astype(np.float32, copy=False),
                rows=result.rows.astype(np.int64, copy=False),
                id_rows=result.id_rows.astype(np.int64, copy=False),
                ids=ascii_ids(result.ids),
                query_ids=np.asarray(query_ids, dtype=str),
                meta=np.array(json.dumps(meta)),
            )


def load_partial(path, keys=("scores", "rows")):
    """Load chosen arrays and the metadata; a damaged file gets a clear error."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {key: data[key] for key in keys}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(
            f"{path}: partial result is damaged or from an older version ({exc}). "
            f"Delete it and run again; Snakemake recomputes only that shard."
        ) from exc
    return meta, arrays


def check_partial_meta(path, meta, expected):
    """Refuse a partial computed from other settings than the ones now configured."""
    wrong = {key: (meta.get(key), value) for key, value in expected.items() if meta.get(key) != value}
    if meta.get("format_version") != FORMAT_VERSION:
        wrong["format_version"] = (meta.get("format_version"), FORMAT_VERSION)
    if wrong:
        detail = ", ".join(f"{key}: file has {have!r}, expected {want!r}" for key, (have, want) in wrong.items())
        raise InputError(
            f"{path}: partial result was computed with other settings ({detail}). "
            f"Delete it (or run with --forcerun search_shard) so it is recomputed."
        )

