"""Checks of the models' inputs that are cheap (HDF5 headers, the query files'
ids, the small adapter and selected-ids files), run once before any job
starts so that a typo fails in seconds, not after an hour of searching. Each
check is the one the jobs run (their messages are the same); feature values
(NaN/inf) are checked while searching."""

from pathlib import Path

from . import features
from .adapter import check_adapter_dim, load_adapter
from .errors import InputError
from .queries import check_has_queries, check_query_dims, check_unique_query_ids
from .selection import read_selected_ids_text


def input_problems(models):
    """Problems of the inputs of ``models`` ((name, config, shard paths) each),
    one line per problem: a bad file that several models share is opened once
    and named once, with every model that uses it."""
    owners = {}  # problem -> the models that meet it, in the order found
    headers = {}
    for name, cfg, shard_paths in models:
        for problem in model_input_problems(cfg, shard_paths, headers):
            owners.setdefault(problem, []).append(name)
    return [f"{named_models(names)}: {problem}" for problem, names in owners.items()]


def named_models(names):
    return f"model {names[0]}" if len(names) == 1 else "models " + ", ".join(names)


def model_input_problems(cfg, shard_paths, headers=None):
    """Problems of one model's inputs (empty when all is well). ``headers``
    keeps each file's header check across models. Files not there yet (made
    by an earlier rule: the demo) are skipped."""
    problems = []
    headers = {} if headers is None else headers

    def check(function, *args):
        try:
            return function(*args)
        except InputError as exc:
            problems.append(str(exc))
            return None

    def header(path):
        if not Path(path).exists():
            return None
        if path not in headers:
            try:
                headers[path] = features.describe(path)
            except InputError as exc:
                headers[path] = exc
        if isinstance(headers[path], InputError):
            problems.append(str(headers[path]))
            return None
        return headers[path]

    queries = header(cfg["query_hdf5"])
    text = header(cfg["text_query_hdf5"]) if cfg.get("text_query_hdf5") else None
    for query_file in (queries, text):
        if query_file:  # a few thousand ids: read whole
            check(check_has_queries, query_file.path, query_file.rows)
            check(lambda path: check_unique_query_ids(features.read_ids(path), path), query_file.path)
    if queries and text:
        check(check_query_dims, text.path, "text", text.dim, queries.path, queries.dim)
    adapter_path = cfg.get("lin_adapt_path")
    adapter = check(load_adapter, adapter_path) if adapter_path and Path(adapter_path).exists() else None
    if queries and adapter is not None:
        check(check_adapter_dim, adapter, queries.dim, adapter_path, queries.path)
    for path in shard_paths:
        shard = header(path)
        if shard and queries:
            check(features.check_database_dim, path, shard.dim, queries.dim, queries.path)
    selected = cfg.get("selected_ids")
    if selected and Path(selected).is_file():
        check(read_selected_ids_text, selected)
    return problems
