"""mini-ILIAS selection: keep a distractor when its id, or the part after the first
'/', is listed in the selected-ids file."""

from pathlib import Path

import numpy as np

from .errors import InputError


def load_selected_ids(path):
    """Sorted unique numpy str array of the listed ids (blank lines ignored)."""
    if not Path(path).is_file():
        raise InputError(f"{path}: selected-ids file does not exist. Check selected_ids.")
    with open(path, encoding="ascii", errors="strict") as fh:
        ids = [line.strip() for line in fh]
    ids = np.unique(np.array([i for i in ids if i], dtype=str))
    if ids.size == 0:
        raise empty_selection(path)
    return ids


def check_not_empty(path):
    """Refuse a selected-ids file without an id (reads it only to its first one)."""
    with open(path, "rb") as fh:
        if not any(line.strip() for line in fh):
            raise empty_selection(path)


def empty_selection(path):
    return InputError(
        f"{path}: selected-ids file is empty. List one distractor id per line, "
        "or remove selected_ids from the model's config to search every distractor."
    )


def _is_member(sorted_ids, candidates):
    pos = np.searchsorted(sorted_ids, candidates)
    pos[pos == len(sorted_ids)] = 0
    return sorted_ids[pos] == candidates


def selection_mask(ids, selected_sorted):
    """Boolean mask of the ids kept by the selection (vectorised, sorted lookup)."""
    ids = np.asarray(ids, dtype=str)
    keep = _is_member(selected_sorted, ids)
    # Ids like "source/name": also try the part after the first '/'.
    parts = np.char.partition(ids, "/")
    has_slash = parts[:, 1] == "/"
    if has_slash.any():
        keep[has_slash] |= _is_member(selected_sorted, parts[has_slash, 2])
    return keep
