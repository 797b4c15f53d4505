"""The workflow deployed as Snakemake users deploy it (snakedeploy, the
catalog's standardized usage): a ``module`` in the user's own Snakefile, in a
folder outside this checkout, with and without a rule prefix."""

import subprocess
import sys

import pytest
import yaml

from conftest import REPO, assert_topk_matches, brute_force, load_result, model_config, small_dataset

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
