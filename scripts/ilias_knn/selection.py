"""mini-ILIAS selection: keep a distractor when its id, or the part after the first
'/', is listed in the selected-ids file."""

from pathlib import Path

import numpy as np

from .errors import InputError


def load_selected_ids(path):
    """Sorted unique numpy str array of the listed ids (blank lines ignored)."""
    ids = [line.strip() for line in read_selected_ids_text(path).splitlines()]
    return np.unique(np.array([i for i in ids if i], dtype=str))


def read_selected_ids_text(path):
    """The text of a selected-ids file, refused when it is missing, not ASCII
    (ILIAS ids are) or without an id. One pass at disk speed: the jobs and the
    check before any job starts both read it through here."""
    if not Path(path).is_file():
        raise InputError(f"{path}: selected-ids file does not exist. Check selected_ids.")
    data = Path(path).read_bytes()
    if not data.isascii():
        first = int(np.flatnonzero(np.frombuffer(data, np.uint8) > 127)[0])
        line = data.count(b"\n", 0, first) + 1
        raise InputError(
            f"{path}: line {line} is not ASCII. ILIAS ids are ASCII "
            "strings, so it can match no distractor: correct or remove that line."
        )
    text = data.decode("ascii")
    if not text.strip():
        raise empty_selection(path)
    return text


def check_selected_ids(path):
    """read_selected_ids_text's checks alone (nothing kept)."""
    read_selected_ids_text(path)


def empty_selection(path):
    return InputError(
        f"{path}: selected-ids file is empty. List one distractor id per line, "
        "or remove selected_ids from the model's config to search every distractor."
    )


def _is_member(sorted_ids, candidates, matched=None):
    pos = np.searchsorted(sorted_ids, candidates)
    pos[pos == len(sorted_ids)] = 0
    hit = sorted_ids[pos] == candidates
    if matched is not None:
        matched[pos[hit]] = True
    return hit


def selection_mask(ids, selected_sorted, matched=None):
    """Boolean mask of the ids kept by the selection (vectorised, sorted lookup).
    ``matched`` (bool, one per selected id), when given, is set where a
    selected id matched one of ``ids``."""
    ids = np.asarray(ids, dtype=str)
    keep = _is_member(selected_sorted, ids, matched)
    # Ids like "source/name": also try the part after the first '/'.
    parts = np.char.partition(ids, "/")
    has_slash = parts[:, 1] == "/"
    if has_slash.any():
        keep[has_slash] |= _is_member(selected_sorted, parts[has_slash, 2], matched)
    return keep


def unmatched_report(path, selected_sorted, matched, kept, total):
    """(one log line, its level: "error", "warning" or "info") on the selected
    ids that matched no distractor of a model's distractor files."""
    unmatched = np.flatnonzero(~matched)
    if kept == 0:
        return (
            f"{path}: none of its {len(selected_sorted)} ids matches a distractor "
            f"(0 of {total} distractors kept). Check that its ids are those of the distractor "
            "files' 'index' (an id, or the part after its first '/').",
            "error",
        )
    if unmatched.size == 0:
        return f"{path}: kept {kept} of {total} distractors; every selected id matched", "info"
    first = ", ".join(repr(str(i)) for i in selected_sorted[unmatched[:5]])
    return (
        f"{path}: {unmatched.size} of its {len(selected_sorted)} ids match no distractor "
        f"(first: {first}); kept {kept} of {total} distractors",
        "warning",
    )
