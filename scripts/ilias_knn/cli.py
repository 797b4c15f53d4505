"""Drop-in for the ILIAS ``knn_search/search.py`` command line: the same flags
build a one-model configuration that this workflow runs through Snakemake
(parallel, resumable, cached), and the result lands at
``{save_dir}/{save_name}.json|.pkl`` as the ILIAS script writes it."""

import argparse
import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .config import load_schema, schema_errors

WORK_SUBDIR = "knn_workflow"  # under save_dir: partials, logs, Snakemake's state (.snakemake/)
EXTENSIONS = {"json": "json", "pickle": "pkl"}


def bool_flag(text):
    value = str(text).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser():
    p = argparse.ArgumentParser(
        prog="python scripts/search.py",
        description="Exact k-NN search on ILIAS features with the flags of the ILIAS "
        "knn_search/search.py, run as a Snakemake workflow: shards are searched in "
        "parallel, a rerun resumes where it stopped, and unchanged shards are reused.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--query_hdf5", required=True, help="HDF5 features of the queries (image or text)")
    p.add_argument("--positive_hdf5", required=True, help="HDF5 features of the positives")
    p.add_argument(
        "--distractor_hdf5", default=None, help="HDF5 features of the distractors; '{idx}' becomes 00000, 00001, ..."
    )
    p.add_argument("--total_distractors", type=int, default=1, help="number of distractor files")
    p.add_argument(
        "--selected_ids",
        "--selected",
        dest="selected_ids",
        default=None,
        help="file of distractor ids to keep (mini-ILIAS); positives are always kept",
    )
    p.add_argument("--k", type=int, default=1000, help="nearest neighbours per query")
    p.add_argument(
        "--query_expansion",
        type=int,
        default=0,
        help="n > 0: expand each query with its top-n neighbours and search again",
    )
    p.add_argument(
        "--lin_adapt_path",
        "--lin_adopt_path",
        dest="lin_adapt_path",
        default=None,
        help="linear adaptation layer (state dict with layer.weight, layer.bias)",
    )
    p.add_argument(
        "--use_gpu",
        type=bool_flag,
        nargs="?",
        const=True,
        default=None,
        help="true: search on the GPU (cuda); false: on the CPU; not given: the GPU when one is visible",
    )
    p.add_argument(
        "--save_dir",
        "--save_path",
        dest="save_dir",
        required=True,
        help="directory of the result file (its knn_workflow/ subfolder keeps the partial results)",
    )
    p.add_argument("--save_name", default="similarities", help="result file name, without extension")
    p.add_argument("--save_as", default="json", choices=["json", "pickle"], help="result format")
    p.add_argument("--cores", default="all", help="CPU cores Snakemake may use ('all' or a number)")
    return p


def absolute(path):
    """An absolute path (the workflow runs in another folder); ``~`` quoted
    past the shell, as '~/f_{idx}.hdf5' must be, is the home folder."""
    return os.path.abspath(os.path.expanduser(path)) if path else None


def build_config(args, work_dir):
    """The one-model workflow configuration of parsed ILIAS flags."""
    model = {
        "query_hdf5": absolute(args.query_hdf5),
        "positive_hdf5": absolute(args.positive_hdf5),
        "distractor_hdf5": absolute(args.distractor_hdf5),
        "total_distractors": args.total_distractors,
        "selected_ids": absolute(args.selected_ids),
        "lin_adapt_path": absolute(args.lin_adapt_path),
        "k": args.k,
        "query_expansion": args.query_expansion,
        "save_as": args.save_as,
        "save_name": args.save_name,
    }
    device = {True: "cuda", False: "cpu", None: "auto"}[args.use_gpu]
    return {
        "results_dir": str(work_dir),
        "device": device,
        "models": {args.save_name: {key: value for key, value in model.items() if value is not None}},
    }


def flag_problems(config, schema_path):
    """The one-model configuration's schema problems, each named by its flag
    (the model's name is the save name): '--k: 0 is less than the minimum of 1'."""
    problems = {}
    for path, _, message in schema_errors(copy.deepcopy(config), load_schema(schema_path)):
        if len(path) > 2 and path[0] == "models":
            flag = f"--{path[2]}"
        else:  # ["models"]: the model's name, which is the save name
            flag = "--save_name" if path == ["models"] else ".".join(map(str, path))
        problems.setdefault(flag, f"{flag}: {message}")
    return list(problems.values())


def workflow_result(work_dir, args):
    return Path(work_dir) / args.save_name / f"{args.save_name}.{EXTENSIONS[args.save_as]}"


def publish(source, target):
    """Put the result at ``target`` atomically (a hard link when possible)."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv=None, snakefile="Snakefile"):
    """Run the workflow of ``snakefile`` with the ILIAS flags in ``argv``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    save_dir = Path(absolute(args.save_dir))
    work_dir = save_dir / WORK_SUBDIR
    config = build_config(args, work_dir)
    problems = flag_problems(config, Path(snakefile).resolve().parent / "config" / "schemas" / "config.schema.yaml")
    if problems:
        parser.error("; ".join(problems))
    work_dir.mkdir(parents=True, exist_ok=True)
    config_path = work_dir / f"{args.save_name}.config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(Path(snakefile).resolve()),
        "--directory",
        str(work_dir),
        "--configfile",
        str(config_path),
        "--cores",
        str(args.cores),
    ]
    print("running:", " ".join(cmd), flush=True)
    status = subprocess.call(cmd)
    if status != 0:
        return status
    target = save_dir / f"{args.save_name}.{EXTENSIONS[args.save_as]}"
    publish(workflow_result(work_dir, args), target)
    print(f"results: {target}")
    return 0
