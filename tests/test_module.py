"""The workflow deployed as Snakemake users deploy it (snakedeploy, the
catalog's standardized usage): a ``module`` in the user's own Snakefile, in a
folder outside this checkout, with and without a rule prefix."""

import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import snakemake
import yaml

from conftest import REPO, assert_topk_matches, brute_force, load_result, model_config, small_dataset
from ilias_knn.demo import make_dataset

USER_SNAKEFILE = """\
configfile: "config/config.yaml"


module knn:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from knn{prefix}
"""


@pytest.mark.parametrize("prefix", ["", " as knn_*"], ids=["no_prefix", "prefix"])
def test_the_workflow_runs_as_a_module_from_another_folder(tmp_path, prefix):
    data = small_dataset(tmp_path / "data")
    user = tmp_path / "user"
    (user / "config").mkdir(parents=True)
    models = {"m": model_config(data, k=30, lin_adapt_path=data["lin_adapt_path"])}
    (user / "config" / "config.yaml").write_text(yaml.safe_dump({"device": "cpu", "models": models}))
    (user / "Snakefile").write_text(USER_SNAKEFILE.format(snakefile=REPO / "Snakefile", prefix=prefix))
    before = sorted(str(p) for p in REPO.rglob("*") if ".git" not in p.parts)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2"], cwd=user, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    qids, ids, sims = load_result(user / "results/m/similarities.json")
    assert_topk_matches(qids, ids, sims, brute_force(models["m"]))
    rule = "knn_search_shard" if prefix else "search_shard"
    assert f"rule {rule}:" in proc.stdout + proc.stderr
    # nothing written into the checkout; a second run has nothing to do
    assert sorted(str(p) for p in REPO.rglob("*") if ".git" not in p.parts) == before
    again = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "-n"], cwd=user, capture_output=True, text=True, timeout=600
    )
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout + again.stderr


def module_user(tmp_path, data, models, prefix=" as knn_*", **settings):
    """A user's folder deploying the workflow as a module, with its config."""
    user = tmp_path / "user"
    (user / "config").mkdir(parents=True)
    (user / "config" / "config.yaml").write_text(yaml.safe_dump({"device": "cpu", "models": models, **settings}))
    (user / "Snakefile").write_text(USER_SNAKEFILE.format(snakefile=REPO / "Snakefile", prefix=prefix))
    return user


def run_in(user, *args, python=sys.executable):
    return subprocess.run(
        [python, "-m", "snakemake", "--cores", "2", *args], cwd=user, capture_output=True, text=True, timeout=600
    )


def test_a_bad_input_in_module_use_fails_before_any_search(tmp_path):
    """A module's onstart is not run: the checks run at the end of parsing,
    with the same one message as a direct run, and no job starts."""
    data = small_dataset(tmp_path / "data")
    bad = data["distractor_hdf5"].replace("{idx}", "00001")
    with open(bad, "r+b") as fh:
        fh.truncate(600)
    user = module_user(tmp_path, data, {"m": model_config(data, k=30)})
    proc = run_in(user)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Bad input, nothing was searched:" in out and f"model m: {bad}: HDF5 file is truncated or corrupt" in out, (
        out
    )
    assert not list(user.glob("results/**/*.npz"))


def test_a_module_prints_its_summary(tmp_path):
    data = small_dataset(tmp_path / "data")
    evaluation = {"dataset_dir": data["dataset_dir"], "taxonomy": data["taxonomy"], "eval_k": 30}
    user = module_user(tmp_path, data, {"m": model_config(data, k=30)}, **evaluation)
    proc = run_in(user)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = (user / "results/summary.tsv").read_text().splitlines()
    model, query_set, k, mean_ap = summary[1].split("\t")[:4]
    assert (model, query_set, k) == ("m", "image", "30")
    printed = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| m ")
    ]
    assert printed and printed[0][:4] == ["m", "image", "30", f"{float(mean_ap):.2f}"], out


@pytest.fixture(scope="module")
def snakemake_alone(tmp_path_factory):
    """A virtual environment with Snakemake and what it depends on, nothing
    else: no numpy, h5py, torch, pandas, nor this workflow's library."""
    venv = tmp_path_factory.mktemp("snakemake_alone") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", f"snakemake=={snakemake.__version__}"],
        check=True,
        capture_output=True,
    )
    for package in ("numpy", "h5py", "torch", "pandas", "ilias_knn"):
        probe = subprocess.run([python, "-c", f"import {package}"], capture_output=True)
        assert probe.returncode != 0, f"{package} is importable in the Snakemake-only environment"
    return python


@pytest.mark.parametrize("args", [["-n"], ["--lint"], ["--rulegraph"]], ids=["dry_run", "lint", "rulegraph"])
def test_parsing_needs_snakemake_alone(snakemake_alone, tmp_path, args):
    """Dry run, lint and rule graph of the demo, direct and as a module, and the
    catalog's rule-graph command, with Snakemake alone."""
    work = tmp_path / "direct"
    work.mkdir()
    demo = ["-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config/config.yaml"), *args]
    proc = run_in(work, *demo, python=snakemake_alone)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if args != ["--lint"]:  # (the lint would be of the user's Snakefile)
        data = small_dataset(tmp_path / "data")
        user = module_user(tmp_path, data, {"m": model_config(data, k=30)})
        proc = run_in(user, *args, python=snakemake_alone)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    if args == ["--rulegraph"]:
        catalog = ["-s", "Snakefile", "-c", "1", "-d", ".test", "--forceall", "--rulegraph"]
        proc = subprocess.run(
            [snakemake_alone, "-m", "snakemake", *catalog], cwd=REPO, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0 and "digraph" in proc.stdout, proc.stdout + proc.stderr


def test_the_catalog_file_says_what_is_true():
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    assert set(catalog["usage"]) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert catalog["usage"]["mandatory-flags"]["flags"].startswith("--configfile")
    assert catalog["usage"]["software-stack-deployment"] == {
        "conda": True,
        "apptainer": False,
        "apptainer+conda": False,
    }
    # every rule has a conda environment (what "conda: true" promises)
    for smk in (REPO / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = len(re.findall(r"^(rule|checkpoint) ", text, re.M))
        assert rules == text.count('conda:\n        "../envs/'), smk
    assert (REPO / ".test/config/config.yaml").is_file()


def readme_module_profile():
    """The profile lines the README's module section tells a module user to add."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Deploy with snakedeploy") :]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S)[1])


def planned_in(user):
    """(rule, output) of the jobs a dry run in ``user`` would run, but all."""
    proc = run_in(user, "-n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs, rule = [], None
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("output:") and rule not in (None, "all", "knn_all"):
            jobs += [(rule, path.strip()) for path in line[len("output:") :].split(",")]
    return sorted(jobs)


def test_a_module_with_the_readme_profile_reruns_only_a_failed_shard(tmp_path):
    """The README's few profile lines in the user's profile: a shard failing
    while searching (NaN rows) does not stop the others, and after the fix the
    rerun searches that shard only."""
    data = make_dataset(tmp_path / "data", num_instances=10, distractor_rows=(1500,) * 4, dim=32, seed=2)
    models = {"m": model_config(data, total_distractors=4, k=20)}
    user = module_user(tmp_path, data, models, scoring="fp32")
    (user / "profiles/default").mkdir(parents=True)
    (user / "profiles/default/config.yaml").write_text(yaml.safe_dump(readme_module_profile()))
    bad = data["distractor_hdf5"].replace("{idx}", "00000")
    with h5py.File(bad, "r+") as fh:
        row = fh["features"][5]
        fh["features"][5] = np.full_like(row, np.nan)
    proc = run_in(user)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{bad}: 1 row(s) of 'features' contain NaN or inf (first at rows [5])" in out, out
    others = ["positives"] + [f"distractors_{i:05d}" for i in range(1, 4)]
    assert sorted(p.stem for p in (user / "results/m/shards").glob("*.npz")) == sorted(others), out
    with h5py.File(bad, "r+") as fh:
        fh["features"][5] = row
    assert planned_in(user) == [
        ("knn_format_results", "results/m/similarities.json"),
        ("knn_merge_shards", "results/m/merged.npz"),
        ("knn_search_shard", "results/m/shards/distractors_00000.npz"),
    ]
    proc = run_in(user)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    qids, ids, sims = load_result(user / "results/m/similarities.json")
    assert_topk_matches(qids, ids, sims, brute_force(models["m"]))
