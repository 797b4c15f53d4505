"""Checks of a model's inputs that are cheap (HDF5 headers, the small adapter
file), run once before any job starts so that a typo fails in seconds, not
after an hour of searching. Feature values (NaN/inf) are checked while searching."""

from pathlib import Path

from . import features
from .adapter import load_adapter
from .errors import InputError


def _header(path, problems):
    if not Path(path).exists():  # made by an earlier rule (the demo), else Snakemake reports it
        return None
    try:
        return features.describe(path)
    except InputError as exc:
        problems.append(str(exc))
        return None


def model_input_problems(name, cfg, shard_paths):
    """Problems of one model's inputs, one line each (empty when all is well)."""
    problems = []
    queries = _header(cfg["query_hdf5"], problems)
    text = _header(cfg["text_query_hdf5"], problems) if cfg.get("text_query_hdf5") else None
    if queries and text and text.dim != queries.dim:
        problems.append(
            f"{text.path}: text queries are {text.dim}-d but {queries.path} has {queries.dim}-d queries. "
            "Both query files of a model must come from the same model."
        )
    adapter = None
    if cfg.get("lin_adapt_path") and Path(cfg["lin_adapt_path"]).exists():
        try:
            adapter = load_adapter(cfg["lin_adapt_path"])
        except InputError as exc:
            problems.append(str(exc))
    if queries and adapter is not None and adapter.in_dim != queries.dim:
        problems.append(
            f"{cfg['lin_adapt_path']}: adapter expects {adapter.in_dim}-d input but {queries.path} has "
            f"{queries.dim}-d features. Use the adapter trained for this model's features."
        )
    for path in shard_paths:
        shard = _header(path, problems)
        if shard and queries and shard.dim != queries.dim:
            problems.append(
                f"{path}: database vectors are {shard.dim}-d but the queries are {queries.dim}-d "
                f"({queries.path}). Queries and database must come from the same model."
            )
    selected = cfg.get("selected_ids")
    if selected and Path(selected).is_file() and not _has_an_id(selected):
        problems.append(
            f"{selected}: selected-ids file is empty. List one distractor id per line, or remove "
            "selected_ids from the model's config to search every distractor."
        )
    return [f"model {name}: {problem}" for problem in problems]


def _has_an_id(path):
    with open(path, "rb") as fh:
        return any(line.strip() for line in fh)
