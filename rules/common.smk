import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from ilias_knn.config import config_errors, load_schema

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"

_problems = config_errors(config, load_schema(SCHEMA))
if _problems:
    raise WorkflowError(
        "Invalid configuration (see README, 'Configuration'):\n  - " + "\n  - ".join(_problems)
    )
validate(config, schema=str(SCHEMA))  # fills in the schema's defaults

RESULTS = config["results_dir"].rstrip("/")
MODELS = config["models"]
RESULT_EXTENSIONS = {"json": "json", "pickle": "pkl"}


def check_model_configs():
    """Cross-field checks that a JSON schema cannot express; no file is opened."""
    for name, cfg in MODELS.items():
        template = cfg.get("distractor_hdf5")
        if template and cfg["total_distractors"] > 1 and "{idx}" not in template:
            raise WorkflowError(
                f"model {name}: distractor_hdf5 ({template}) has no '{{idx}}' placeholder but "
                f"total_distractors is {cfg['total_distractors']}. Write the path with {{idx}} "
                "where the 5-digit file number goes, e.g. features_distractors_{idx}.hdf5."
            )


check_model_configs()


wildcard_constraints:
    model="|".join(re.escape(m) for m in sorted(MODELS, key=len, reverse=True)),
    shard=r"positives|distractors_\d{5}",
    save_name=r"[A-Za-z0-9_.-]+",
    ext="|".join(RESULT_EXTENSIONS.values()),


def get_num_distractors(model):
    cfg = MODELS[model]
    return cfg["total_distractors"] if cfg.get("distractor_hdf5") else 0


def get_distractor_hdf5(model, idx):
    return MODELS[model]["distractor_hdf5"].replace("{idx}", f"{idx:05d}")


def get_shard_names(model):
    return ["positives"] + [f"distractors_{i:05d}" for i in range(get_num_distractors(model))]


def get_partial_path(model, shard):
    return f"{RESULTS}/{model}/shards/{shard}.npz"


def get_shard_hdf5(model, shard):
    if shard == "positives":
        return MODELS[model]["positive_hdf5"]
    return get_distractor_hdf5(model, int(shard.split("_")[1]))


def get_search_input(wildcards):
    """Inputs of one shard search: its queries, its one shard file, and the model's
    adapter / selected ids when configured (positives are never filtered)."""
    cfg = MODELS[wildcards.model]
    inputs = {
        "queries": cfg["query_hdf5"],
        "shard": get_shard_hdf5(wildcards.model, wildcards.shard),
    }
    if cfg.get("lin_adapt_path"):
        inputs["adapter"] = cfg["lin_adapt_path"]
    if cfg.get("selected_ids") and wildcards.shard != "positives":
        inputs["selected_ids"] = cfg["selected_ids"]
    return inputs


def get_merge_input(wildcards):
    shards = get_shard_names(wildcards.model)
    return {
        "positives": get_partial_path(wildcards.model, shards[0]),
        "distractors": [get_partial_path(wildcards.model, s) for s in shards[1:]],
    }


def get_model_param(key, default=None):
    """A scalar lookup of one model's setting: changing it reruns that model only."""
    return lambda wildcards: MODELS[wildcards.model].get(key) or default


def get_result_path(model):
    cfg = MODELS[model]
    return f"{RESULTS}/{model}/{cfg['save_name']}.{RESULT_EXTENSIONS[cfg['save_as']]}"


def get_final_output():
    return [get_result_path(model) for model in MODELS]


def get_search_runtime(wildcards, input):
    """Minutes for one shard search, from the shard file's size (a stat, no open):
    generous for the CPU path (about 3 min per GB measured with bf16 on 2 cores)."""
    shard = Path(input.shard)
    shard_gb = shard.stat().st_size / 2**30 if shard.exists() else 2
    return int(15 + 10 * shard_gb)


def get_search_gpu():
    """GPU request for shard searches: only when device is cuda (auto cannot know
    at planning time whether the cluster's nodes have one)."""
    return {"gpu": 1} if config["device"] == "cuda" else {}


def get_search_mem_mb(wildcards, input, threads):
    """Memory of a shard search. Blocks are bounded, so it grows with the query
    file (queries, and the nq x k top-k state) and k, never with the shard's rows.
    Only the query file's size is looked at (no file is opened)."""
    queries = Path(input.queries)
    query_mb = queries.stat().st_size / 2**20 if queries.exists() else 16
    k = MODELS[wildcards.model]["k"]
    return int(768 + 8 * query_mb + 0.05 * k * query_mb + 128 * threads)
