"""Checks of the models' inputs that are cheap (HDF5 headers, the query files'
ids, the small adapter and selected-ids files, the evaluation's ground truth),
run once before any job starts so that a typo fails in seconds, not after an
hour of searching. Each check is the one the jobs run (their messages are the
same); feature values (NaN/inf) are checked while searching."""

from dataclasses import replace
from pathlib import Path

from . import features
from .adapter import check_adapter_dim, load_adapter
from .errors import InputError
from .evaluation import check_query_instances, read_ground_truth, read_taxonomy
from .imported import check_results, read_results
from .queries import check_query_dims, read_query_file
from .selection import check_selected_ids


def input_problems(models, dataset_dir=None, taxonomy=None, eval_k=None):
    """Problems of the inputs of ``models`` ((name, config, shard paths) each)
    and, with ``dataset_dir``, of the ground truth they are evaluated on, one
    line per problem: a bad file that several models share is opened once and
    named once, with every model that uses it."""
    problems = []
    ground_truth = checked_ground_truth(dataset_dir, taxonomy, problems) if dataset_dir else None
    owners = {}  # problem -> the models that meet it, in the order found
    done = {}
    for name, cfg, shard_paths in models:
        if cfg.get("similarities"):
            found = imported_problems(cfg, dataset_dir, ground_truth, eval_k) if ground_truth else []
        else:
            found = model_input_problems(cfg, shard_paths, done, ground_truth)
        for problem in found:
            owners.setdefault(problem, []).append(name)
    return problems + [f"{named_models(names)}: {problem}" for problem, names in owners.items()]


def checked_ground_truth(dataset_dir, taxonomy, problems):
    """The ground truth (without a taxonomy where that is unreadable), or None,
    its problems (the positives' and the taxonomy's, both) added to
    ``problems``. Files not there yet are skipped."""
    ground_truth, taxonomy_read = None, {}
    if (Path(dataset_dir) / "image_ids" / "positive_ids.txt").exists():
        try:
            ground_truth = read_ground_truth(dataset_dir)
        except InputError as exc:
            problems.append(f"evaluation: {exc}")
    if taxonomy and Path(taxonomy).exists():
        try:
            taxonomy_read = read_taxonomy(taxonomy)
        except InputError as exc:
            problems.append(f"evaluation: {exc}")
    if ground_truth is None:
        return None
    return replace(ground_truth, taxonomy=taxonomy_read, taxonomy_path=taxonomy)


def named_models(names):
    return f"model {names[0]}" if len(names) == 1 else "models " + ", ".join(names)


def model_input_problems(cfg, shard_paths, done=None, ground_truth=None):
    """Problems of one model's inputs (empty when all is well), its query ids
    checked against ``ground_truth`` when given. ``done`` keeps each file's
    checks across models. Files not there yet (made by an earlier rule: the
    demo) are skipped."""
    problems = []
    done = {} if done is None else done  # (check, path) -> its result or its error

    def check(function, *args):
        try:
            return function(*args)
        except InputError as exc:
            problems.append(str(exc))
            return None

    def check_file(function, path):
        """``check(function, path)``, run once per file across models."""
        key = (function, str(path))
        if key not in done:
            try:
                done[key] = function(path)
            except InputError as exc:
                done[key] = exc
        if isinstance(done[key], InputError):
            problems.append(str(done[key]))
            return None
        return done[key]

    def header(path):
        return check_file(features.describe, path) if Path(path).exists() else None

    queries = header(cfg["query_hdf5"])
    text = header(cfg["text_query_hdf5"]) if cfg.get("text_query_hdf5") else None
    for query_file in (queries, text):
        ids = check_file(read_query_file, query_file.path) if query_file else None  # a few thousand
        if ids is not None and ground_truth is not None:
            check(check_query_instances, ids, ground_truth, query_file.path)
    if queries and text:
        check(check_query_dims, text.path, "text", text.dim, queries.path, queries.dim)
    adapter_path = cfg.get("lin_adapt_path")
    adapter = check_file(load_adapter, adapter_path) if adapter_path and Path(adapter_path).exists() else None
    if queries and adapter is not None:
        check(check_adapter_dim, adapter, queries.dim, adapter_path, queries.path)
    for path in shard_paths:
        shard = header(path)
        if shard and queries:
            check(features.check_database_dim, path, shard.dim, queries.dim, queries.path)
    selected = cfg.get("selected_ids")
    if selected and Path(selected).is_file():
        check_file(check_selected_ids, selected)
    return problems


IMPORTED_KEYS = {"similarities": "image", "text_similarities": "text"}


def imported_problems(cfg, dataset_dir, ground_truth, eval_k):
    """Problems of a model's results made elsewhere, one per file."""
    problems = []
    for key, query_set in IMPORTED_KEYS.items():
        path = cfg.get(key)
        if not path or not Path(path).exists():
            continue
        try:
            check_results(read_results(path, query_set), path, ground_truth, dataset_dir, query_set, eval_k)
        except InputError as exc:
            problems.append(str(exc))
    return problems
