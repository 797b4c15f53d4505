"""Results made elsewhere (a model's ``similarities`` / ``text_similarities``):
a file as ILIAS ``search.py`` writes it (formats.py: JSON or pickle), read into
a MergedResult and checked before it is evaluated like a searched model."""

import pickle
from pathlib import Path

import numpy as np
import orjson

from .errors import InputError
from .evaluation import check_query_instances, read_lines
from .merged_result import MergedResult

PICKLE_KEYS = ("query_ids", "db_ids", "sims", "ranks")
# the dataset's query ids, per query set (ILIAS image_ids/, as the demo writes them)
QUERY_ID_FILES = {"image": "image_query_ids.txt", "text": "text_query_ids.txt"}
FORMAT_HINT = "Write it as ILIAS search.py does (save_as json or pickle), or point similarities elsewhere."


def read_results(path, query_set="image"):
    """The file's results as a MergedResult of ``query_set`` (rows cut to the
    shortest query's list where a JSON file's lists differ in length)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:1] in (b"{", b"[") or path.suffix == ".json":
        query_ids, db_ids, sims, ranks = _from_json(path, raw)
    else:
        query_ids, db_ids, sims, ranks = _from_pickle(path, raw)
    meta = {"k": sims.shape[1], "query_sets": [[query_set, 0, len(query_ids)]], "shards": []}
    return MergedResult(
        np.array(query_ids, dtype=str),
        np.array(db_ids, dtype="S"),
        sims,
        ranks,
        meta,
        np.arange(len(db_ids), dtype=np.int64),
    )


def _from_json(path, raw):
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not a JSON results file ({exc}). {FORMAT_HINT}") from None
    if not isinstance(data, dict) or not data or not all(isinstance(v, dict) for v in data.values()):
        raise InputError(f"{path}: expected {{query id: {{database id: score, ...}}, ...}}. {FORMAT_HINT}")
    length = min(len(v) for v in data.values())
    db_index, rows, scores = {}, [], []
    for results in data.values():
        ids = list(results)[:length]
        rows.append([db_index.setdefault(i, len(db_index)) for i in ids])
        scores.append([results[i] for i in ids])
    try:
        sims = np.array(scores, dtype=np.float32).reshape(len(data), length)
    except (TypeError, ValueError):
        raise InputError(f"{path}: scores must be numbers. {FORMAT_HINT}") from None
    ranks = np.array(rows, dtype=np.int64).reshape(len(data), length)
    return list(data), list(db_index), sims, ranks


def _from_pickle(path, raw):
    try:
        data = pickle.loads(raw)
    except Exception as exc:  # a pickle can fail in any way
        raise InputError(f"{path}: neither a JSON nor a pickle results file ({exc}). {FORMAT_HINT}") from None
    missing = [key for key in PICKLE_KEYS if not isinstance(data, dict) or key not in data]
    if missing:
        raise InputError(
            f"{path}: the pickle has no {', '.join(missing)} (it needs {', '.join(PICKLE_KEYS)}). {FORMAT_HINT}"
        )
    query_ids, db_ids = np.asarray(data["query_ids"]), np.asarray(data["db_ids"])
    sims, ranks = np.asarray(data["sims"], dtype=np.float32), np.asarray(data["ranks"])
    if sims.ndim != 2 or ranks.shape != sims.shape or len(query_ids) != sims.shape[0]:
        raise InputError(
            f"{path}: sims {sims.shape} and ranks {ranks.shape} must both be queries x results, "
            f"with one row per query id ({len(query_ids)}). {FORMAT_HINT}"
        )
    if ranks.size and (not np.issubdtype(ranks.dtype, np.integer) or ranks.min() < 0 or ranks.max() >= len(db_ids)):
        raise InputError(f"{path}: ranks must be indices into db_ids (0 to {len(db_ids) - 1}). {FORMAT_HINT}")
    return query_ids.astype(str).tolist(), db_ids.astype(str).tolist(), sims, ranks.astype(np.int64)


def dataset_query_ids(dataset_dir, query_set):
    """The dataset's query ids of ``query_set``, None where it lists none."""
    path = Path(dataset_dir) / "image_ids" / QUERY_ID_FILES[query_set]
    if not path.is_file():
        return None
    return [line.split(",")[0].strip() for line in read_lines(path) if line.strip()]


def check_results(results, path, ground_truth, dataset_dir, query_set, eval_k):
    """A results file fit to evaluate: one entry per query of the dataset, each
    query's instance in the ground truth, at least ``eval_k`` results per query,
    no database id twice in a query's list."""
    ids = results.query_ids.tolist()
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: some query ids appear more than once. {FORMAT_HINT}")
    expected = dataset_query_ids(dataset_dir, query_set)
    if expected is not None:
        missing, extra = sorted(set(expected) - set(ids)), sorted(set(ids) - set(expected))
        if missing or extra:
            raise InputError(
                f"{path}: {len(missing)} of the dataset's {len(expected)} {query_set} queries have no entry "
                f"(first: {missing[:5]}) and {len(extra)} entries are of no such query (first: {extra[:5]}). "
                f"Give one entry per query of {Path(dataset_dir) / 'image_ids' / QUERY_ID_FILES[query_set]}."
            )
    check_query_instances(results.query_ids, ground_truth, str(path))
    have = results.sims.shape[1]
    if have < eval_k:
        raise InputError(
            f"{path}: {have} results per query (the shortest list), fewer than eval_k ({eval_k}). "
            "Give at least eval_k results per query, or lower eval_k."
        )
    ranks = np.sort(results.ranks, axis=1)
    if have and (ranks[:, 1:] == ranks[:, :-1]).any():
        raise InputError(f"{path}: a database id appears twice in one query's list. {FORMAT_HINT}")
