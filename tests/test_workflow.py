"""End-to-end Snakemake runs on tiny generated data: results against float64
brute force, incremental job lists, resume after kill, bad input."""

import json
import os
import re
import shutil
import signal
import time

import h5py
import numpy as np
import pytest
import yaml

from conftest import (
    REPO,
    PausedShardJob,
    assert_topk_matches,
    brute_force,
    changed,
    load_result,
    model_config,
    planned_job_list,
    planned_jobs,
    run_snakemake,
    small_dataset,
)
from ilias_knn.demo import make_dataset, write_adapter, write_feature_file


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """Three models run once: plain json; adapter + selected ids as pickle; k > database."""
    work = tmp_path_factory.mktemp("wf")
    data = small_dataset(work / "data")
    shutil.copy(data["lin_adapt_path"], work / "adapter_b.pth")
    shutil.copy(data["selected_ids"], work / "selected_b.txt")
    config = {
        "results_dir": "results",
        "device": "cpu",
        "scoring": "bf16",  # the fast path, whatever this CPU is (results are exact either way)
        "models": {
            "plain": model_config(data, total_distractors=2, k=40),
            "adapted": model_config(
                data,
                lin_adapt_path=str(work / "adapter_b.pth"),
                selected_ids=str(work / "selected_b.txt"),
                save_as="pickle",
                k=60,
            ),
            "huge_k": model_config(data, distractor_hdf5=None, k=1000),
        },
    }
    run_snakemake(work, config=config)
    return work, data, config


def test_results_equal_brute_force(finished_run):
    work, _, config = finished_run
    for name, cfg in config["models"].items():
        ext = "pkl" if cfg.get("save_as") == "pickle" else "json"
        qids, ids, sims = load_result(work / "results" / name / f"similarities.{ext}")
        ref = brute_force(cfg)
        assert_topk_matches(qids, ids, sims, ref)
    # k larger than the database: the whole (positives-only) database, sorted
    _, ids, _ = load_result(work / "results/huge_k/similarities.json")
    assert len(ids[0]) == 32


def test_nothing_to_do_after_a_run(finished_run):
    work, _, config = finished_run
    assert planned_job_list(work, config=config) == []


def jobs_for(model, shards=(), merge=True, fmt=None):
    jobs = [("search_shard", f"results/{model}/shards/{s}.npz") for s in shards]
    if merge:
        jobs.append(("merge_shards", f"results/{model}/merged.npz"))
    jobs.append(("format_results", f"results/{model}/{fmt or 'similarities.json'}"))
    return jobs


D = [f"distractors_{i:05d}" for i in range(3)]


def test_incremental_job_lists(finished_run):
    work, data, config = finished_run
    # adding a model runs only that model's jobs
    added = json.loads(json.dumps(config))
    added["models"]["new"] = model_config(data, total_distractors=1, k=10)
    assert planned_jobs(work, added) == sorted(jobs_for("new", ["positives", D[0]]))
    # k of one model: that model's searches, merge and format
    assert planned_jobs(work, changed(config, "plain", k=41)) == sorted(jobs_for("plain", ["positives", *D[:2]]))
    # selected ids: only the distractor shards are filtered, positives are reused
    shutil.copy(data["selected_ids"], work / "selected_c.txt")
    assert planned_jobs(work, changed(config, "adapted", selected_ids=str(work / "selected_c.txt"))) == sorted(
        jobs_for("adapted", D, fmt="similarities.pkl")
    )
    # queries of one model
    assert planned_jobs(work, changed(config, "huge_k", query_hdf5=data["positive_hdf5"])) == sorted(
        jobs_for("huge_k", ["positives"])
    )
    # output format or name: the format job only
    assert planned_jobs(work, changed(config, "plain", save_as="pickle")) == [
        ("format_results", "results/plain/similarities.pkl")
    ]
    assert planned_jobs(work, changed(config, "plain", save_name="run2")) == [
        ("format_results", "results/plain/run2.json")
    ]
    # scoring kernel, device, threads: nothing (the results are the same)
    assert planned_jobs(work, dict(config, scoring="fp32", device="auto", search_threads=2, gpu_threads=3)) == []
    # more distractor files: only the new shard, then merge and format
    assert planned_jobs(work, changed(config, "plain", total_distractors=3)) == sorted(jobs_for("plain", [D[2]]))
    # fewer: merge and format only (the unused partial stays)
    assert planned_jobs(work, changed(config, "plain", total_distractors=1)) == sorted(jobs_for("plain"))


@pytest.mark.parametrize("version,first_rerun", [("PARTIAL", "search_shard"), ("MERGED", "merge_shards")])
def test_a_new_intermediate_file_format_reruns_the_jobs_that_write_it(finished_run, tmp_path, version, first_rerun):
    """Files in an older format are made again, not read by code that expects
    the new one: a copy of the workflow with one format version raised plans
    the jobs that write those files, and what follows."""
    work, _, config = finished_run
    workflow = tmp_path / "workflow"
    workflow.mkdir()
    for part in ("Snakefile", "rules", "scripts", "config", "envs", "profiles"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy2
        copy(REPO / part, workflow / part)
    source = workflow / "scripts/ilias_knn/versions.py"
    text, raised = re.subn(
        rf"^{version}_FORMAT_VERSION = (\d+)",
        lambda m: f"{version}_FORMAT_VERSION = {int(m[1]) + 1}",
        source.read_text(),
        count=1,
        flags=re.M,
    )
    assert raised == 1
    source.write_text(text)
    searches = {"plain": ["positives", *D[:2]], "adapted": ["positives", *D], "huge_k": ["positives"]}
    expected = []
    for model, cfg in config["models"].items():
        fmt = "similarities.pkl" if cfg.get("save_as") == "pickle" else None
        expected += jobs_for(model, searches[model] if first_rerun == "search_shard" else [], fmt=fmt)
    assert planned_jobs(work, config, snakefile=workflow / "Snakefile") == sorted(expected)


def test_a_rewritten_distractor_file_reruns_its_shard_searches_only(finished_run, tmp_path):
    """Features extracted again into one distractor file: that shard's search
    in each model that searches it, then their merges and formats."""
    work, data, config = finished_run
    path = data["distractor_hdf5"].replace("{idx}", "00001")
    shutil.copy2(path, tmp_path / "original.hdf5")
    time.sleep(1.1)  # a newer modification time than the results', at any timestamp resolution
    with h5py.File(path, "r+") as fh:
        fh["features"][0] = -fh["features"][0]
    try:
        assert planned_jobs(work, config) == sorted(
            jobs_for("plain", [D[1]]) + jobs_for("adapted", [D[1]], fmt="similarities.pkl")
        )
    finally:
        shutil.copy2(tmp_path / "original.hdf5", path)  # same content and time as the results were made from


def test_changed_adapter_file_reruns_only_that_model(finished_run):
    work, data, config = finished_run
    time.sleep(1.1)
    write_adapter(work / "adapter_b.pth", 32, 24, seed=99)
    try:
        assert planned_jobs(work, config) == sorted(jobs_for("adapted", ["positives", *D], fmt="similarities.pkl"))
        run_snakemake(work, config=config)
        qids, ids, sims = load_result(work / "results/adapted/similarities.pkl")
        assert_topk_matches(qids, ids, sims, brute_force(config["models"]["adapted"]))
    finally:
        shutil.copy(data["lin_adapt_path"], work / "adapter_b.pth")
        run_snakemake(work, config=config)


def test_user_configfile_runs_only_its_models(finished_run):
    work, _, config = finished_run
    proc = run_snakemake(work, "-n", "--quiet", "rules", config=config)
    assert "demo" not in proc.stdout + proc.stderr
    assert "make_demo_data" not in proc.stdout + proc.stderr


def test_a_failing_shard_does_not_stop_the_others(tmp_path):
    """A fault found only while searching (NaN in one file's rows): every other
    shard is still searched, and after the fix the rerun searches that one."""
    data = make_dataset(tmp_path / "data", num_instances=10, distractor_rows=(3000,) * 6, dim=32, seed=2)
    cfg = {"device": "cpu", "scoring": "fp32", "models": {"m": model_config(data, total_distractors=6, k=20)}}
    bad = data["distractor_hdf5"].replace("{idx}", "00000")
    with h5py.File(bad, "r+") as fh:
        row = fh["features"][5]
        fh["features"][5] = np.full_like(row, np.nan)
    proc = run_snakemake(tmp_path, config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{bad}: 1 row(s) of 'features' contain NaN or inf (first at rows [5])" in out, out
    shards = tmp_path / "results/m/shards"
    others = ["positives"] + [f"distractors_{i:05d}" for i in range(1, 6)]
    assert sorted(p.stem for p in shards.glob("*.npz")) == sorted(others), out
    with h5py.File(bad, "r+") as fh:
        fh["features"][5] = row
    assert planned_jobs(tmp_path, cfg) == sorted(jobs_for("m", ["distractors_00000"]))
    run_snakemake(tmp_path, config=cfg)
    qids, ids, sims = load_result(tmp_path / "results/m/similarities.json")
    assert_topk_matches(qids, ids, sims, brute_force(cfg["models"]["m"]))


@pytest.mark.parametrize("stop", ["kill", "ctrl-c"])
def test_kill_and_resume(tmp_path, stop):
    """Killed (kill -9: its lock stays, the README says to unlock) or
    interrupted (Ctrl-C: run the same command again) while searching a shard:
    the rerun keeps the finished shards and does the rest."""
    data = make_dataset(
        tmp_path / "data", num_instances=20, queries_per_instance=5, distractor_rows=(4000,) * 6, dim=64, seed=5
    )
    cfg = {
        "results_dir": "results",
        "device": "cpu",
        "scoring": "fp32",
        "models": {"m": model_config(data, total_distractors=6, k=100)},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = PausedShardJob(tmp_path, job=2)
    run.wait()  # two shards searched, the third job started
    os.killpg(run.proc.pid, signal.SIGKILL if stop == "kill" else signal.SIGINT)  # snakemake and its job
    out = run.finish()
    run.release()
    assert run.proc.returncode != 0, out
    shards = tmp_path / "results/m/shards"
    done = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.npz")}
    assert len(done) == 2, done
    if stop == "kill":
        run_snakemake(tmp_path, "--unlock")
    run_snakemake(tmp_path)
    after = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.npz")}
    assert len(after) == 7
    assert {name: after[name] for name in done} == done  # finished shards not redone
    assert not list(shards.glob(".*tmp*"))
    qids, ids, sims = load_result(tmp_path / "results/m/similarities.json")
    assert_topk_matches(qids, ids, sims, brute_force(cfg["models"]["m"]))


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change,message",
    [
        (
            {"models": {"m": {"query_hdf5": "q", "positive_hdf5": "p", "topk": 5}}},
            "models.m: Additional properties are not allowed ('topk' was unexpected)",
        ),
        (
            {"models": {"m": {"query_hdf5": "q", "positive_hdf5": "p", "k": "ten"}}},
            "models.m.k: 'ten' is not of type 'integer'",
        ),
        ({"models": {"bad/name": {"query_hdf5": "q", "positive_hdf5": "p"}}}, "name 'bad/name' is not valid"),
        ({"models": {"..": {"query_hdf5": "q", "positive_hdf5": "p"}}}, "name '..' is not valid"),
        ({"models": {"m": {"query_hdf5": "q", "positive_hdf5": "p", "k": 0}}}, "0 is less than the minimum of 1"),
        (
            {
                "models": {
                    "m": {"query_hdf5": "q", "positive_hdf5": "p", "distractor_hdf5": "d.h5", "total_distractors": 3}
                }
            },
            "has no '{idx}' placeholder",
        ),
        (
            {
                "models": {
                    "m": {
                        "query_hdf5": "q",
                        "positive_hdf5": "p",
                        "distractor_hdf5": "d_{idx:03d}.h5",
                        "total_distractors": 3,
                    }
                }
            },
            "has '{idx:03d}', but total_distractors is 3. Write the "
            "path with {idx} (exactly: it always becomes a 5-digit",
        ),
        (
            {"resuls_dir": "x", "models": {"m": {"query_hdf5": "q", "positive_hdf5": "p"}}},
            "'resuls_dir' was unexpected",
        ),
    ],
)
def test_bad_config_is_rejected_clearly(tmp_path, change, message):
    proc = run_snakemake(tmp_path, "-n", config=change, check=False)
    assert proc.returncode != 0
    assert message.lower() in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr


def test_cross_field_config_problems_and_missing_files_of_every_model_at_once(tmp_path, dataset):
    """...and the problems of the files that are there (here a truncated one),
    which a run would otherwise find only once the others are fixed."""
    truncated = tmp_path / "truncated.hdf5"
    shutil.copy(dataset["positive_hdf5"], truncated)
    os.truncate(truncated, truncated.stat().st_size // 2)
    cfg = {
        "models": {
            "a": model_config(dataset, distractor_hdf5="d.h5", total_distractors=2),
            "b": model_config(dataset, k=5, query_expansion=6),
            "c": model_config(dataset, positive_hdf5="gone.hdf5"),
            "d": model_config(dataset, positive_hdf5=str(truncated)),
        }
    }
    proc = run_snakemake(tmp_path, "-n", config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "model a: distractor_hdf5 (d.h5) has no '{idx}' placeholder" in out, out
    assert "model b: query_expansion (6) is larger than k (5)" in out, out
    assert (
        "2 configured input file(s) do not exist:\n  - model a: distractor_hdf5 file 00000 of 2; "
        "model a: distractor_hdf5 file 00001 of 2: d.h5\n  - model c: positive_hdf5: gone.hdf5\n" in out
    ), out
    assert f"Bad input files:\n  - model d: {truncated}: HDF5 file is truncated or corrupt" in out, out


def test_a_models_schema_problem_comes_with_the_other_models_problems(tmp_path, dataset):
    """A typo in one model's keys does not hide another model's missing file
    (the model with the typo is left out of the file checks: its settings
    cannot be trusted). A problem in the run's own settings comes alone."""
    cfg = {
        "models": {
            "a": model_config(dataset, lin_adapter_path="x.pth"),
            "b": model_config(dataset, positive_hdf5="gone.hdf5"),
        }
    }
    proc = run_snakemake(tmp_path, "-n", config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "Invalid configuration (see README, 'Configuration'):\n  - models.a: Additional properties are not "
        "allowed ('lin_adapter_path' was unexpected)\n" in out
    ), out
    assert "1 configured input file(s) do not exist:\n  - model b: positive_hdf5: gone.hdf5\n" in out, out
    cfg["results_dir"] = 3
    proc = run_snakemake(tmp_path, "-n", config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "results_dir: 3 is not of type 'string'" in out and "do not exist" not in out, out


@pytest.mark.parametrize("total", [2, 3])
def test_a_distractor_file_beyond_total_distractors_is_a_warning(tmp_path, dataset, total):
    """The dataset has files 00000-00002: total_distractors 2 leaves one unsearched."""
    proc = run_snakemake(tmp_path, "-n", config={"models": {"m": model_config(dataset, total_distractors=total)}})
    out = proc.stdout + proc.stderr
    unsearched = dataset["distractor_hdf5"].replace("{idx}", "00002")
    warning = f"Warning: model m: {unsearched} exists but total_distractors is 2, so it (and any file after it)"
    assert (warning in out) == (total == 2), out


def test_home_folder_in_paths_is_expanded(tmp_path):
    """``~/...`` in the configuration is the home folder (neither YAML nor
    Snakemake expands it): inputs are found, results land under home, not in
    a folder named '~'."""
    home = tmp_path / "home"
    data = small_dataset(home / "data")
    cfg = model_config(data, total_distractors=2, k=20, lin_adapt_path=data["lin_adapt_path"])
    in_home = {key: "~/" + os.path.relpath(path, home) for key, path in cfg.items() if isinstance(path, str)}
    work = tmp_path / "work"
    work.mkdir()
    config = {"results_dir": "~/results", "scoring": "fp32", "models": {"m": dict(cfg, **in_home)}}
    run_snakemake(work, config=config, env={"HOME": str(home)})
    assert not (work / "~").exists()
    assert_topk_matches(*load_result(home / "results/m/similarities.json"), brute_force(cfg))


def test_missing_file_is_named(tmp_path, dataset):
    cfg = {"models": {"m": model_config(dataset, total_distractors=5)}}
    proc = run_snakemake(tmp_path, "-n", config=cfg, check=False)
    assert proc.returncode != 0
    assert "features_distractors_00003.hdf5" in proc.stdout + proc.stderr


@pytest.mark.parametrize("fault", ["dimension", "nan", "adapter_dim", "empty"])
def test_bad_input_fails_clearly_and_keeps_other_results(tmp_path, dataset, fault):
    good = model_config(dataset, total_distractors=1, k=10)
    cfg = {"device": "cpu", "models": {"good": good}}
    run_snakemake(tmp_path, config=cfg)
    result = tmp_path / "results/good/similarities.json"
    before = result.read_bytes()
    bad = dict(good)
    if fault == "dimension":
        write_feature_file(tmp_path / "q.h5", np.ones((2, 16)), ["a", "b"], "float32")
        bad["query_hdf5"], message = str(tmp_path / "q.h5"), "32-d but the queries are 16-d"
    elif fault == "nan":
        x = np.ones((50, 32), np.float32)
        x[7] = np.inf
        write_feature_file(tmp_path / "p.h5", x, [str(i) for i in range(50)], "float32")
        bad["positive_hdf5"], message = str(tmp_path / "p.h5"), "1 row(s) of 'features' contain NaN or inf"
    elif fault == "adapter_dim":
        write_adapter(tmp_path / "a.pth", 64, 8)
        bad["lin_adapt_path"], message = str(tmp_path / "a.pth"), "adapter expects 64-d input"
    else:
        (tmp_path / "sel.txt").write_text("no-such-id\n")
        write_feature_file(tmp_path / "p0.h5", np.ones((0, 32)), [], "float16")
        bad.update(selected_ids=str(tmp_path / "sel.txt"), positive_hdf5=str(tmp_path / "p0.h5"))
        message = "database is empty after filtering"
    cfg["models"]["bad"] = bad
    proc = run_snakemake(tmp_path, config=cfg, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert result.read_bytes() == before
    assert not (tmp_path / "results/bad/similarities.json").exists()
