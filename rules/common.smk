import csv
import importlib.util
import os
import re
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError


def load_library_module(name):
    """One of the library's standard-library-only modules, loaded from this
    workflow's own source: parsing needs Snakemake alone (no install of the
    library, no numpy, h5py or torch), also for a module from a remote source.
    What needs those runs in jobs, in the jobs' environment."""
    path = workflow.source_path(f"../scripts/ilias_knn/{name}.py")
    spec = importlib.util.spec_from_file_location(f"ilias_knn_workflow.{name}", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


_config_module = load_library_module("config")
check_config, load_schema = _config_module.check_config, _config_module.load_schema
cache_dir = load_library_module("cache").cache_dir
FingerprintCache = load_library_module("fingerprint").FingerprintCache
_resources = load_library_module("resources")
attempt_factor, grown_with_attempt = (
    _resources.attempt_factor,
    _resources.grown_with_attempt,
)
_versions = load_library_module("versions")
MERGED_FORMAT_VERSION = _versions.MERGED_FORMAT_VERSION
PARTIAL_FORMAT_VERSION = _versions.PARTIAL_FORMAT_VERSION

# from this file's own folder: in a module, workflow.basedir is the user's
SCHEMA = Path(workflow.source_path("../config/schemas/config.schema.yaml"))

# one pass: every problem listed, and the schema's defaults filled in
_schema_problems = check_config(config, load_schema(SCHEMA))
SCHEMA_PROBLEMS = [line for _, line in _schema_problems]
_models_with_problems = {model for model, _ in _schema_problems}  # None: the run's own
if None in _models_with_problems:
    # the run's own settings are unusable: nothing else can be checked
    raise WorkflowError(
        "Invalid configuration (see README, 'Configuration'):\n  - "
        + "\n  - ".join(SCHEMA_PROBLEMS)
    )

RESULTS = config["results_dir"].rstrip("/")
# a model with a schema problem is left out of the other checks, not of the message
MODELS = {
    name: cfg
    for name, cfg in config["models"].items()
    if name not in _models_with_problems
}
DEMO = config["demo"]
EVALUATE = bool(config.get("dataset_dir"))
REFERENCE = config.get("reference_model")
RESULT_EXTENSIONS = {"json": "json", "pickle": "pkl"}
TEXT_SUFFIX = "_text"  # evaluation_text.json, {save_name}_text.{ext}: text-query files
# results made elsewhere: the key of each query set's file
IMPORTED_KEYS = {"": "similarities", TEXT_SUFFIX: "text_similarities"}
FEATURE_KEYS = (
    "query_hdf5",
    "text_query_hdf5",
    "positive_hdf5",
    "distractor_hdf5",
    "selected_ids",
    "lin_adapt_path",
)


def is_imported(model):
    """A model whose results were made elsewhere: evaluated, never searched."""
    return bool(MODELS[model].get("similarities"))


SEARCHED = [model for model in MODELS if not is_imported(model)]


def model_config_problems():
    """Cross-field checks that a JSON schema cannot express, every problem of
    every model; no file is opened."""
    problems = []
    for name, cfg in MODELS.items():
        problems += imported_config_problems(name, cfg)
        template = cfg.get("distractor_hdf5")
        if template and cfg["total_distractors"] > 1 and "{idx}" not in template:
            placeholder = re.search(r"\{idx[^}]*\}", template)
            problems.append(
                f"model {name}: distractor_hdf5 ({template}) has "
                + (f"'{placeholder[0]}'," if placeholder else "no '{idx}' placeholder")
                + f" but total_distractors is {cfg['total_distractors']}. Write the path with "
                "{idx} (exactly: it always becomes a 5-digit number, 00000, 00001, ...) where "
                "the file number goes, e.g. features_distractors_{idx}.hdf5."
            )
        if cfg["query_expansion"] > cfg["k"]:
            problems.append(
                f"model {name}: query_expansion ({cfg['query_expansion']}) is larger than k "
                f"({cfg['k']}). Expansion uses the first search's top-n: raise k or lower n."
            )
    return problems


def imported_config_problems(name, cfg):
    """A model searches features or imports results, one or the other."""
    features = [key for key in FEATURE_KEYS if cfg.get(key)]
    if cfg.get("text_similarities") and not cfg.get("similarities"):
        return [
            f"model {name}: text_similarities needs similarities (the image queries' results)."
        ]
    if cfg.get("similarities"):
        if features:
            return [
                f"model {name}: similarities (results made elsewhere) and {', '.join(features)} "
                "(features to search) together. Give one or the other: two models if you want both."
            ]
        if not EVALUATE:
            return [
                f"model {name}: similarities (results made elsewhere) are only evaluated, and "
                "dataset_dir is not set. Set dataset_dir, or remove the model."
            ]
        return []
    required = [key for key in ("query_hdf5", "positive_hdf5") if not cfg.get(key)]
    if required:
        return [
            f"model {name}: {' and '.join(required)} missing. Give the features to search "
            "(query_hdf5, positive_hdf5, ...), or similarities for results made elsewhere."
        ]
    return []


def reference_problems():
    """reference_model must name a model, and the models must be evaluated."""
    if not REFERENCE:
        return []
    if REFERENCE not in config["models"]:
        return [
            f"reference_model ({REFERENCE}) is not one of the models "
            f"({', '.join(config['models'])}). Name one of them, or remove reference_model."
        ]
    if not EVALUATE:
        return [
            f"reference_model ({REFERENCE}) needs dataset_dir: models are compared on "
            "their evaluation. Set dataset_dir, or remove reference_model."
        ]
    return []


def warn_unsearched_distractors():
    """A distractor file numbered total_distractors exists: most likely the
    setting was left at its default or not raised, and results would silently
    cover part of the database. A warning (searching fewer files on purpose is
    allowed); one stat per model."""
    for name, cfg in MODELS.items():
        template, total = cfg.get("distractor_hdf5"), cfg["total_distractors"]
        if not template or "{idx}" not in template:
            continue
        unsearched = get_distractor_hdf5(name, total)
        if os.path.exists(unsearched):
            print(
                f"Warning: model {name}: {unsearched} exists but total_distractors is "
                f"{total}, so it (and any file after it) is not searched. Raise "
                "total_distractors to search it.",
                file=sys.stderr,
            )


def get_num_distractors(model):
    cfg = MODELS[model]
    return cfg["total_distractors"] if cfg.get("distractor_hdf5") else 0


def get_distractor_hdf5(model, idx):
    return MODELS[model]["distractor_hdf5"].replace("{idx}", f"{idx:05d}")


def get_shard_names(model):
    return ["positives"] + [
        f"distractors_{i:05d}" for i in range(get_num_distractors(model))
    ]


def get_shard_hdf5(model, shard):
    if shard == "positives":
        return MODELS[model]["positive_hdf5"]
    return get_distractor_hdf5(model, int(shard.split("_")[1]))


def get_query_set_suffixes(model):
    """File-name suffix of each query set of a model: "" (image), "_text" (text)."""
    text_key = "text_similarities" if is_imported(model) else "text_query_hdf5"
    return [""] + ([TEXT_SUFFIX] if MODELS[model].get(text_key) else [])


def get_result_files(model):
    """{file name: query set} of a model's ILIAS result files: {save_name}.{ext}
    for the image queries, {save_name}_text.{ext} for the text queries."""
    cfg = MODELS[model]
    if is_imported(model):
        return {}
    ext = RESULT_EXTENSIONS[cfg["save_as"]]
    return {
        f"{cfg['save_name']}{suffix}.{ext}": "text" if suffix else "image"
        for suffix in get_query_set_suffixes(model)
    }


def get_demo_outputs():
    """The files the make_demo_data rule writes (inputs of the demo models)."""
    out = DEMO["out_dir"]
    return {
        "queries": f"{out}/features_image_queries.hdf5",
        "text_queries": f"{out}/features_text_queries.hdf5",
        "positives": f"{out}/features_positives.hdf5",
        "distractors": [
            f"{out}/features_distractors_{i:05d}.hdf5"
            for i in range(len(DEMO["distractor_rows"]))
        ],
        "adapter": f"{out}/lin_adapt.pth",
        "selected_ids": f"{out}/selected_ids.txt",
        "ground_truth": [
            f"{out}/image_ids/{name}"
            for name in (
                "image_query_ids.txt",
                "text_query_ids.txt",
                "positive_ids.txt",
            )
        ],
        "taxonomy": f"{out}/taxonomy.json",
    }


def get_configured_inputs():
    """(owner, config key, path) of every input file the configuration names."""
    for name, cfg in MODELS.items():
        for key in (
            "query_hdf5",
            "text_query_hdf5",
            "positive_hdf5",
            "lin_adapt_path",
            "selected_ids",
            *IMPORTED_KEYS.values(),
        ):
            if cfg.get(key):
                yield f"model {name}", key, cfg[key]
        total = get_num_distractors(name)
        for idx in range(total):
            yield f"model {name}", f"distractor_hdf5 file {idx:05d} of {total}", get_distractor_hdf5(
                name, idx
            )
    if EVALUATE:
        yield "evaluation", "dataset_dir", f"{config['dataset_dir']}/image_ids/positive_ids.txt"
        if config.get("taxonomy"):
            yield "evaluation", "taxonomy", config["taxonomy"]


def get_workflow_made_inputs():
    """Input paths that a rule of this workflow writes (the demo's data)."""
    made_here = set()
    for paths in get_demo_outputs().values():
        made_here.update(
            os.path.normpath(p) for p in ([paths] if isinstance(paths, str) else paths)
        )
    return made_here


WORKFLOW_MADE = get_workflow_made_inputs()
# content fingerprints of the configured input files, cached on this machine
# by inode, size and times (written by the main process only)
FINGERPRINTS = FingerprintCache(
    cache_dir() / "fingerprints", writable=workflow.is_main_process
)


def get_input_fingerprints(get_input, *keys):
    """A params function: {path: content fingerprint} of the files under ``keys``
    among a job's inputs (``get_input(wildcards)``). A file whose content changed
    reruns the job even when its modification time is old (rsync -a, cp -p);
    files that a rule of this workflow writes are left to Snakemake's own time
    checks. (A params function of the job's ``input`` would not be compared:
    Snakemake takes it for one derived from the inputs.)"""

    def fingerprints(wildcards):
        inputs = get_input(wildcards)
        paths = []
        for key in keys:
            value = inputs.get(key)
            paths += [value] if isinstance(value, str) else list(value or [])
        return {
            p: FINGERPRINTS.fingerprint(p)
            for p in sorted(set(paths))
            if os.path.normpath(p) not in WORKFLOW_MADE
        }

    return fingerprints


def missing_inputs():
    """Every configured input must exist, in every run (dry runs and runs with
    nothing to do included): results already on disk must never pass for results
    of a configuration whose inputs are gone. One line per missing file, with
    everything that names it; stats only, no file is opened."""
    named_by = {}  # a missing file -> (its path as configured, where it is named)
    for owner, key, path in get_configured_inputs():
        normal = os.path.normpath(path)
        if not os.path.exists(path) and normal not in WORKFLOW_MADE:
            named_by.setdefault(normal, (path, []))[1].append(f"{owner}: {key}")
    return [f"{'; '.join(where)}: {path}" for path, where in named_by.values()]


def get_checked_models():
    """(name, settings, shard files) of every model, as the input checks take them."""
    return [
        (
            name,
            cfg,
            (
                [get_shard_hdf5(name, shard) for shard in get_shard_names(name)]
                if name in SEARCHED
                else []
            ),
        )
        for name, cfg in MODELS.items()
    ]


def input_file_problems():
    """Header checks of every model's files that exist and of the ground truth.
    They need the jobs' packages (h5py, torch) in Snakemake's own environment,
    as the README's install has; without them (a plain Snakemake running jobs
    in --sdm conda environments) none are made here, and each job checks its
    own inputs as it starts, with the same messages."""
    try:
        from ilias_knn.validate import input_problems
    except ImportError:
        return []
    return input_problems(
        get_checked_models(),
        config.get("dataset_dir"),
        config.get("taxonomy"),
        config["eval_k"],
    )


def check_configuration():
    """The configuration's cross-field problems and its missing inputs (and then
    the problems of the files that are there), all in one message, before
    anything runs."""
    sections = []
    problems = SCHEMA_PROBLEMS + model_config_problems() + reference_problems()
    if problems:
        sections.append(
            "Invalid configuration (see README, 'Configuration'):\n  - "
            + "\n  - ".join(problems)
        )
    missing = missing_inputs()
    if missing:
        sections.append(
            f"{len(missing)} configured input file(s) do not exist:\n  - "
            + "\n  - ".join(missing)
            + "\nCorrect these paths (or total_distractors) in the configuration, or "
            "restore the files, and run again."
        )
    if sections:
        # failing anyway: the files that are there are checked too, so that
        # one run lists every problem
        bad = input_file_problems()
        if bad:
            sections.append("Bad input files:\n  - " + "\n  - ".join(bad))
        raise WorkflowError(
            "Nothing was run (results already on disk are left as they are).\n"
            + "\n".join(sections)
        )


check_configuration()
# once per run, not again in every cluster job's log
if workflow.is_main_process:
    warn_unsearched_distractors()


wildcard_constraints:
    model="|".join(re.escape(m) for m in sorted(MODELS, key=len, reverse=True)),
    shard=r"positives|distractors_\d{5}",
    # "" for the first search, "qe<n>/" for the search with expanded queries
    stage=r"(qe[1-9]\d*/)?",
    query_set_suffix=f"({TEXT_SUFFIX})?",
    # the configured result file names only: which query set a file holds is
    # looked up per model, never parsed from the name
    result_file="|".join(re.escape(f) for m in MODELS for f in get_result_files(m)),


def get_query_inputs(model):
    """The model's query files: image queries, and text queries when configured."""
    cfg = MODELS[model]
    inputs = {"queries": cfg["query_hdf5"]}
    if cfg.get("text_query_hdf5"):
        inputs["text_queries"] = cfg["text_query_hdf5"]
    return inputs


def get_adapter_input(model):
    path = MODELS[model].get("lin_adapt_path")
    return {"adapter": path} if path else {}


def get_search_input(wildcards):
    """Inputs of one shard search: its queries (the query files, or the expanded
    queries in an expansion round), its one shard file, and the model's adapter /
    selected ids when configured (positives are never filtered)."""
    cfg = MODELS[wildcards.model]
    if wildcards.stage:
        inputs = {
            "expanded": f"{RESULTS}/{wildcards.model}/{wildcards.stage}expanded_queries.npz"
        }
    else:
        inputs = get_query_inputs(wildcards.model)
    inputs["shard"] = get_shard_hdf5(wildcards.model, wildcards.shard)
    inputs.update(get_adapter_input(wildcards.model))
    if cfg.get("selected_ids") and wildcards.shard != "positives":
        inputs["selected_ids"] = cfg["selected_ids"]
    return inputs


def get_partials(model, stage):
    """A model's partials of one search round: positives, then distractors in order."""
    shards = get_shard_names(model)
    partial = lambda shard: f"{RESULTS}/{model}/{stage}shards/{shard}.npz"
    return {
        "positives": partial(shards[0]),
        "distractors": [partial(s) for s in shards[1:]],
    }


def get_merge_input(wildcards):
    return get_partials(wildcards.model, wildcards.stage)


def get_merge_query_input(wildcards):
    """The query files a model's merge checks its partials against (none in an
    expansion round: the expanded queries are made by the workflow)."""
    return {} if wildcards.stage else get_query_inputs(wildcards.model)


def get_expand_input(wildcards):
    """The first search's merged top-k, the query files and every shard file
    (expansion reads just the rows of each query's top-n from them)."""
    model = wildcards.model
    return {
        "merged": f"{RESULTS}/{model}/merged.npz",
        **get_query_inputs(model),
        **get_adapter_input(model),
        "shards": [get_shard_hdf5(model, shard) for shard in get_shard_names(model)],
    }


def get_final_stage(model):
    n = MODELS[model]["query_expansion"]
    return f"qe{n}/" if n else ""


def get_final_merged(wildcards):
    return f"{RESULTS}/{wildcards.model}/{get_final_stage(wildcards.model)}merged.npz"


def get_model_param(key, default=None):
    """A scalar lookup of one model's setting: changing it reruns that model only."""
    return lambda wildcards: MODELS[wildcards.model].get(key) or default


def get_query_set(wildcards):
    return "text" if wildcards.query_set_suffix else "image"


def get_result_file_query_set(wildcards):
    return get_result_files(wildcards.model)[wildcards.result_file]


def get_result_paths(model):
    return [f"{RESULTS}/{model}/{name}" for name in get_result_files(model)]


def get_intermediates(model):
    """Every partial, merged file and expanded query file of a model: targets of
    the run, so that one deleted (or removed after a failed job) is made again,
    and what depends on it after it, even where later files still exist."""
    if is_imported(model):
        return []
    stages = [""] + (
        [get_final_stage(model)] if MODELS[model]["query_expansion"] else []
    )
    paths = []
    for stage in stages:
        partials = get_partials(model, stage)
        paths += [partials["positives"], *partials["distractors"]]
        paths.append(f"{RESULTS}/{model}/{stage}merged.npz")
        if stage:
            paths.append(f"{RESULTS}/{model}/{stage}expanded_queries.npz")
    return paths


def get_final_output():
    outputs = [path for model in MODELS for path in get_result_paths(model)]
    outputs += [path for model in MODELS for path in get_intermediates(model)]
    if EVALUATE:
        outputs += [f"{RESULTS}/summary.tsv"]
        outputs += [f"{RESULTS}/scale_curves.png"] if SEARCHED else []
        if REFERENCE:
            outputs += list(get_comparison_outputs().values())
        # no scale curve of results made elsewhere: their database is unknown
        outputs += [f"{RESULTS}/{model}/scale_curve.png" for model in SEARCHED]
    return outputs


# ----------------------------------------------------------------------------
# Evaluation (when dataset_dir is set)
# ----------------------------------------------------------------------------
def get_ground_truth_input():
    inputs = {"positive_ids": f"{config['dataset_dir']}/image_ids/positive_ids.txt"}
    if config.get("taxonomy"):
        inputs["taxonomy"] = config["taxonomy"]
    return inputs


def get_evaluate_input(wildcards):
    """The model's final merged top-k, or its results made elsewhere, and the
    ground truth."""
    model = wildcards.model
    if is_imported(model):
        key = IMPORTED_KEYS[wildcards.query_set_suffix]
        return {"similarities": MODELS[model][key], **get_ground_truth_input()}
    return {"merged": get_final_merged(wildcards), **get_ground_truth_input()}


def get_model_eval_k(model):
    """The k of mAP@k for one model: eval_k, capped at the k it was searched
    with (a list of k results says nothing about ranks beyond k); results made
    elsewhere are evaluated at eval_k (the checks make sure they hold that many)."""
    if is_imported(model):
        return config["eval_k"]
    return min(config["eval_k"], MODELS[model]["k"])


def get_eval_k(wildcards):
    return get_model_eval_k(wildcards.model)


def get_evaluation_reports():
    return [
        f"{RESULTS}/{m}/evaluation{sfx}.json"
        for m in MODELS
        for sfx in get_query_set_suffixes(m)
    ]


def get_comparison_outputs():
    return {
        "tsv": f"{RESULTS}/comparison.tsv",
        "queries": f"{RESULTS}/comparison_queries.tsv",
        "tex": f"{RESULTS}/comparison.tex",
        "png": f"{RESULTS}/comparison.png",
    }


def get_compare_input():
    inputs = {"reports": get_evaluation_reports()}
    if config.get("taxonomy"):
        inputs["taxonomy"] = config["taxonomy"]
    return inputs


def get_evaluation_keys():
    return [
        [m, "text" if sfx else "image"]
        for m in MODELS
        for sfx in get_query_set_suffixes(m)
    ]


def get_scale_curve_input(wildcards):
    """The first search's partials (a prefix of them is a smaller database)."""
    inputs = get_partials(wildcards.model, "")
    inputs["positive_ids"] = get_ground_truth_input()["positive_ids"]
    return inputs


def get_curves(models):
    """Scale curves of these models and what the plot says of each: its TSV,
    its label, and the model's final evaluation when that search is another
    one (with query expansion, the curve is of the first search)."""
    ks = {get_model_eval_k(m) for m in models}
    curves = []
    for model in models:
        n = MODELS[model]["query_expansion"]
        for sfx in get_query_set_suffixes(model):
            label = f"{model} {'text' if sfx else 'image'}"
            if len(ks) > 1:
                label += f" (mAP@{get_model_eval_k(model)})"
            curves.append(
                {
                    "tsv": f"{RESULTS}/{model}/scale_curve{sfx}.tsv",
                    "label": label + (" without query expansion" if n else ""),
                    "expanded_report": (
                        f"{RESULTS}/{model}/evaluation{sfx}.json" if n else None
                    ),
                    "expanded_label": (
                        f"{label} with query expansion (n = {n})" if n else None
                    ),
                }
            )
    return curves


def get_curves_title(models, name):
    ks = {get_model_eval_k(m) for m in models}
    metric = f"mAP@{ks.pop()}" if len(ks) == 1 else "mAP@k"
    return f"{name}{metric} vs database size"


def get_plot_input(models):
    curves = get_curves(models)
    return {
        "curves": [c["tsv"] for c in curves],
        "expanded_reports": [
            c["expanded_report"] for c in curves if c["expanded_report"]
        ],
    }


def get_plot_params(models):
    return [
        {key: c[key] for key in ("label", "expanded_label")} for c in get_curves(models)
    ]


def get_search_runtime(wildcards, input, attempt):
    """Minutes for one shard search, from the shard file's size (a stat, no open),
    with room for the CPU path (bench/README.md has the rates)."""
    shard = Path(input.shard)
    shard_gb = shard.stat().st_size / 2**30 if shard.exists() else 2
    return int((15 + 10 * shard_gb) * attempt_factor(attempt))


def get_search_threads():
    """Threads of a shard search: BLAS and decoding threads on the CPU; on a
    GPU, the decoding threads that feed it."""
    return (
        config["gpu_threads"]
        if config["device"] == "cuda"
        else config["search_threads"]
    )


def get_search_gpu():
    """GPU request for shard searches, with the cores that decode for the GPU
    (SLURM: --gpus, --cpus-per-gpu): only when device is cuda (auto cannot know
    at planning time whether the cluster's nodes have one)."""
    if config["device"] != "cuda":
        return {}
    return {"gpu": 1, "cpus_per_gpu": config["gpu_threads"]}


def get_search_mem_mb(wildcards, threads, attempt):
    """Memory of a shard search. Blocks are bounded, so it grows with the query
    files (queries, and the nq x k top-k state) and k, never with the shard's rows.
    Only the query files' sizes are looked at (no file is opened)."""
    paths = [Path(p) for p in get_query_inputs(wildcards.model).values()]
    query_mb = sum(p.stat().st_size / 2**20 if p.exists() else 16 for p in paths)
    k = MODELS[wildcards.model]["k"]
    base = 768 + 8 * query_mb + 0.05 * k * query_mb + 128 * threads
    return int(base * attempt_factor(attempt))


RUN_STARTED = time.time()


LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) (.*)$")


def log_lines(path, level):
    """The messages of ``level`` (ERROR, WARNING) in a job's log, with the
    lines that continue them (a message of several lines)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return []
    lines, current = [], None
    for line in text.splitlines():
        record = LOG_RECORD.match(line)
        if record:
            current = record[1]
            if current == level:
                lines.append(record[2])
        elif current == level and line.strip():
            lines.append(line.strip())
    return lines


def get_job_logs(since=0.0):
    """The logs of this workflow's jobs, written since ``since`` (a time)."""
    logs = []
    for path in Path(RESULTS).glob("**/logs/**/*.log"):
        try:
            if path.stat().st_mtime >= since:
                logs.append(path)
        except OSError:
            pass
    return sorted(logs)


def print_failed_job_errors():
    """At the end of a failed run: each failed job's own error line(s) from its
    log (the file and the fix), in one block after Snakemake's report."""
    failed = [
        (path, lines)
        for path in get_job_logs(since=RUN_STARTED - 1)
        if (lines := log_lines(path, "ERROR"))
    ]
    if failed:
        block = "\n".join(
            f"  - {line}  [{path}]" for path, lines in failed for line in lines
        )
        print(f"\nThe run failed. What the failed jobs said:\n{block}", file=sys.stderr)


def print_summary():
    """At the end of a run: the cross-model summary as a Markdown table, and the
    merges' warnings (rows of zero norm, selected ids that matched nothing)."""
    path = Path(f"{RESULTS}/summary.tsv")
    if EVALUATE and path.exists():
        print(f"\nILIAS evaluation ({path}):\n{markdown_table(path)}")
    notes = [
        f"model {model}: {line}"
        for model in MODELS
        for stage in sorted({"", get_final_stage(model)})
        for line in log_lines(f"{RESULTS}/{model}/logs/{stage}merge.log", "WARNING")
    ]
    if notes:
        print("\nWarnings:\n  - " + "\n  - ".join(notes))


def markdown_table(tsv):
    """A TSV as a Markdown table, numbers with two decimals (standard library:
    this runs in Snakemake's own process)."""

    def cell(text):
        try:
            return (
                text
                if float(text).is_integer() and "." not in text
                else f"{float(text):.2f}"
            )
        except ValueError:
            return text

    with open(tsv, newline="") as fh:
        header, *rows = list(csv.reader(fh, delimiter="\t"))
    lines = [header, ["---"] * len(header)] + [[cell(c) for c in row] for row in rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def validate_inputs():
    """Before any job runs: header checks of every model's files and of the
    ground truth, all problems reported at once."""
    problems = input_file_problems()
    if problems:
        listing = "\n  - ".join(problems)
        raise WorkflowError(f"Bad input, nothing was searched:\n  - {listing}")


# Snakemake runs no onstart/onsuccess/onerror handler of a module: there, the
# input checks run here, once the workflow is parsed (dry runs included). Not
# as a job every search waits for: rerun after an input changed, such a job
# reruns every search, or (its output ancient()) keeps Snakemake from looking
# at the searches' own reasons to run (Snakemake 9.27, found by a test).
RUN_AS_MODULE = os.path.realpath(workflow.main_snakefile) != os.path.realpath(
    workflow.source_path("../Snakefile")
)
if RUN_AS_MODULE and workflow.is_main_process:
    validate_inputs()
