"""Faults and bad input (checked before any search where cheap), and the
drop-in command line for the ILIAS knn_search/search.py."""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from conftest import (
    REPO,
    PausedShardJob,
    assert_topk_matches,
    brute_force,
    brute_force_expanded,
    load_result,
    model_config,
    run_snakemake,
)
from ilias_knn import features
from ilias_knn.demo import make_dataset, write_feature_file
from ilias_knn.engines import prepare_queries
from ilias_knn.errors import InputError
from ilias_knn.formats import write_json
from ilias_knn.merge import merge_partials
from ilias_knn.partials import save_partial
from ilias_knn.shard_search import search_shard

CLI = [sys.executable, str(REPO / "scripts" / "search.py")]


# ----------------------------------------------------------------------------
# Drop-in command line
# ----------------------------------------------------------------------------
def test_cli_help_explains_every_ilias_flag():
    out = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True).stdout
    for flag in (
        "--query_hdf5",
        "--positive_hdf5",
        "--distractor_hdf5",
        "--total_distractors",
        "--selected_ids",
        "--k",
        "--query_expansion",
        "--lin_adapt_path",
        "--use_gpu",
        "--save_dir",
        "--save_name",
        "--save_as",
        "--save_path",
        "--lin_adopt_path",
        "--selected",
    ):
        assert flag in out


@pytest.mark.parametrize("save_as", ["json", "pickle"])
def test_cli_equals_brute_force(dataset, tmp_path, save_as):
    # the README spellings the ILIAS script rejects are accepted too
    args = [
        "--query_hdf5",
        dataset["query_hdf5"],
        "--positive_hdf5",
        dataset["positive_hdf5"],
        "--distractor_hdf5",
        dataset["distractor_hdf5"],
        "--total_distractors",
        "3",
        "--selected",
        dataset["selected_ids"],
        "--lin_adopt_path",
        dataset["lin_adapt_path"],
        "--k",
        "25",
        "--query_expansion",
        "2",
        "--use_gpu",
        "false",
        "--cores",
        "2",
        "--save_path",
        str(tmp_path / "out"),
        "--save_name",
        "sims",
        "--save_as",
        save_as,
    ]
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cfg = model_config(dataset, selected_ids=dataset["selected_ids"], lin_adapt_path=dataset["lin_adapt_path"], k=25)
    ext = "json" if save_as == "json" else "pkl"
    qids, ids, sims = load_result(tmp_path / "out" / f"sims.{ext}")
    assert_topk_matches(qids, ids, sims, brute_force_expanded(cfg, 2))
    # a second call finds everything done and rewrites nothing
    before = (tmp_path / "out" / f"sims.{ext}").stat().st_mtime_ns
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    assert (tmp_path / "out" / f"sims.{ext}").stat().st_mtime_ns >= before


def test_cli_takes_the_save_names_ilias_users_give(dataset, tmp_path):
    """ILIAS users search text queries as --query_hdf5 and name the result
    similarities_text; Snakemake's state stays under {save_dir}/knn_workflow/.
    A '~' the shell left alone (quoted, as a path with {idx} is) is home."""
    out = tmp_path / "out"
    in_home = "~/" + os.path.relpath(dataset["distractor_hdf5"], tmp_path)
    proc = subprocess.run(
        [
            *CLI,
            "--query_hdf5",
            dataset["text_query_hdf5"],
            "--positive_hdf5",
            dataset["positive_hdf5"],
            "--distractor_hdf5",
            in_home,
            "--total_distractors",
            "3",
            "--k",
            "20",
            "--use_gpu",
            "false",
            "--cores",
            "2",
            "--save_dir",
            "~/out",
            "--save_name",
            "similarities_text",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, HOME=str(tmp_path)),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cfg = model_config(dataset, k=20)
    qids, ids, sims = load_result(out / "similarities_text.json")
    assert_topk_matches(qids, ids, sims, brute_force(cfg, queries_path=dataset["text_query_hdf5"]))
    assert sorted(p.name for p in out.iterdir()) == ["knn_workflow", "similarities_text.json"]
    assert (out / "knn_workflow" / ".snakemake").is_dir()


def test_cli_bad_flag_value_is_refused(tmp_path):
    proc = subprocess.run(
        [*CLI, "--query_hdf5", "q", "--positive_hdf5", "p", "--save_dir", str(tmp_path), "--use_gpu", "maybe"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "expected true or false" in proc.stderr


def test_cli_names_the_flag_of_a_value_the_workflow_refuses(tmp_path):
    """A save name the workflow cannot use as a model and file name, or k = 0,
    is refused by its flag, in one message, before anything is written."""
    proc = subprocess.run(
        [
            *CLI,
            "--query_hdf5",
            "q",
            "--positive_hdf5",
            "p",
            "--save_dir",
            str(tmp_path / "out"),
            "--save_name",
            "my sims",
            "--k",
            "0",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert "--save_name: name 'my sims' is not valid: use letters, digits" in message
    assert "--k: 0 is less than the minimum of 1" in message
    assert message.count("--save_name") == 1 and "models." not in message
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------
# Bad input found before any search starts
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["distractor_dim", "text_dim", "no_index", "empty_selection"])
def test_cheap_checks_fail_before_any_search(tmp_path, dataset, fault):
    cfg = model_config(dataset, total_distractors=3, k=10)
    if fault == "distractor_dim":  # the last shard is from another model: fails in seconds, not at the end
        bad = tmp_path / "d_{idx}.h5"
        for i, rows in enumerate((50, 50, 50)):
            write_feature_file(
                str(bad).replace("{idx}", f"{i:05d}"),
                np.ones((rows, 32 if i < 2 else 48)),
                [f"x/{i}_{r}" for r in range(rows)],
            )
        cfg["distractor_hdf5"], message = str(bad), "d_00002.h5: database vectors are 48-d but the queries are 32-d"
    elif fault == "text_dim":
        write_feature_file(tmp_path / "t.h5", np.ones((3, 16)), ["a", "b", "c"])
        cfg["text_query_hdf5"], message = str(tmp_path / "t.h5"), "text queries are 16-d"
    elif fault == "no_index":
        with h5py.File(tmp_path / "p.h5", "w") as fh:
            fh["features"] = np.ones((4, 32), np.float32)
        cfg["positive_hdf5"], message = str(tmp_path / "p.h5"), "no 'index' dataset"
    else:
        (tmp_path / "sel.txt").write_text("\n\n")
        cfg["selected_ids"], message = str(tmp_path / "sel.txt"), "selected-ids file is empty"
    proc = run_snakemake(tmp_path, config={"device": "cpu", "models": {"m": cfg}}, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert "nothing was searched" in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("results/**/*.npz"))


def test_truncated_data_is_named(tmp_path):
    path = tmp_path / "big.h5"
    write_feature_file(path, np.ones((20000, 32)), [f"x/{i}" for i in range(20000)], "float32")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.5)])  # header intact, rows missing
    queries = prepare_queries(np.ones((2, 32), np.float32), None)
    with pytest.raises(InputError, match=r"big.h5: .*truncated or corrupt"):
        search_shard(queries, path, 5)


def test_duplicate_ids_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 8)).astype(np.float32)
    write_feature_file(tmp_path / "q.h5", x[:2], ["q/0", "q/1"], "float32")
    for name, ids in (("a", ["a", "b", "c", "d", "e"]), ("b", ["f", "g", "c", "h", "i"])):
        write_feature_file(tmp_path / f"{name}.h5", x, ids, "float32")
    _, qf, qids = features.read_all(tmp_path / "q.h5")
    paths = []
    for name in ("a", "b"):
        result = search_shard(prepare_queries(qf, None), tmp_path / f"{name}.h5", 10)
        save_partial(tmp_path / f"{name}.npz", result, qids, {"k": 10, "shard": f"{name}.h5"})
        paths.append(str(tmp_path / f"{name}.npz"))
    with pytest.raises(InputError, match=r"database id 'c' appears 2 times .*a.h5', 2\), \('b.h5', 2\)"):
        merge_partials(paths, 10)


# ----------------------------------------------------------------------------
# Faults: a second run, a full disk
# ----------------------------------------------------------------------------
def test_second_run_in_the_same_directory_is_refused(tmp_path):
    """The first run is held at its second shard search, so it holds the lock
    and has finished one shard when the second run starts, whatever the speed
    of either."""
    data = make_dataset(tmp_path / "data", num_instances=10, distractor_rows=(3000,) * 3, dim=32, seed=2)
    cfg = {"device": "cpu", "scoring": "fp32", "models": {"m": model_config(data, total_distractors=3, k=20)}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    first = PausedShardJob(tmp_path, job=1)
    try:
        first.wait()
        assert list((tmp_path / ".snakemake" / "locks").glob("*")), "the first run holds no lock"
        assert len(list((tmp_path / "results/m/shards").glob("*.npz"))) == 1
        second = run_snakemake(tmp_path, config=cfg, check=False)
    finally:
        first.release()
    out = first.finish()
    assert second.returncode != 0
    assert "cannot be locked" in second.stdout + second.stderr
    assert first.proc.returncode == 0, out
    qids, ids, sims = load_result(tmp_path / "results/m/similarities.json")
    assert_topk_matches(qids, ids, sims, brute_force(cfg["models"]["m"]))


@pytest.fixture
def small_filesystem(tmp_path):
    """mount(size_kb): a real, small file system (tmpfs); needs root, as in CI."""
    mounts = []

    def mount(size_kb):
        path = tmp_path / f"fs{len(mounts)}"
        path.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        mounts.append(path)
        return path

    yield mount
    for path in mounts:
        subprocess.run(["umount", str(path)])


def test_disk_full_leaves_no_half_written_result(small_filesystem, dataset, tmp_path):
    tiny_filesystem = small_filesystem(64)
    cfg = model_config(dataset, k=500)
    _, qf, qids = features.read_all(cfg["query_hdf5"])
    result = search_shard(prepare_queries(qf, None), cfg["distractor_hdf5"].replace("{idx}", "00000"), 500)
    save_partial(tmp_path / "p.npz", result, qids, {"k": 500})
    merged = merge_partials([str(tmp_path / "p.npz")], 500)
    target = tiny_filesystem / "similarities.json"
    target.write_bytes(b"{}")  # an earlier result
    with pytest.raises(OSError) as err:
        write_json(target, merged)
    assert err.value.errno == 28  # ENOSPC
    assert target.read_bytes() == b"{}"
    assert [p.name for p in tiny_filesystem.iterdir()] == ["similarities.json"]


def test_disk_full_in_a_run_is_one_clear_line(small_filesystem, tmp_path):
    """The format step of a real run writes onto the full file system."""
    data = make_dataset(tmp_path / "data", num_instances=10, distractor_rows=(300,), dim=16, seed=1)
    cfg = {"device": "cpu", "models": {"m": model_config(data, total_distractors=1, k=200)}}
    run_snakemake(tmp_path, config=cfg)
    # move the model's folder onto the tiny file system, nearly full, then ask for a new file name
    results = tmp_path / "results" / "m"
    files = [p for p in results.rglob("*") if p.is_file()]
    # room for the folder twice (in KB), then filled up
    tiny_filesystem = small_filesystem(sum(p.stat().st_size // 4096 + 1 for p in files) * 4 * 2 + 64)
    subprocess.run(["cp", "-a", f"{results}/.", str(tiny_filesystem)], check=True)
    subprocess.run(["rm", "-rf", str(results)], check=True)
    results.symlink_to(tiny_filesystem)
    free = os.statvfs(tiny_filesystem)
    (tiny_filesystem / "filler").write_bytes(b"x" * max(0, free.f_bavail * free.f_frsize - 12288))
    cfg["models"]["m"]["save_name"] = "again"
    proc = run_snakemake(tmp_path, config=cfg, check=False)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    log = (results / "logs" / "format_again.json.log").read_text()
    assert "no space left while writing" in log and "again.json" in log
    assert not (results / "again.json").exists()
    assert not [p for p in tiny_filesystem.iterdir() if ".tmp-" in p.name]
    qids, ids, sims = load_result(results / "similarities.json")  # the earlier result is intact
    assert_topk_matches(qids, ids, sims, brute_force(cfg["models"]["m"]))
    (tiny_filesystem / "filler").unlink()  # the advice: free space and run again
    run_snakemake(tmp_path, config=cfg)
    qids, ids, sims = load_result(results / "again.json")
    assert_topk_matches(qids, ids, sims, brute_force(cfg["models"]["m"]))


# ----------------------------------------------------------------------------
# The bad-input table, in one working directory: every case fails with its
# message (before any search where the headers tell), and the good model's
# finished result stays byte for byte what it was.
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("table")
    data = make_dataset(work / "data", num_instances=6, distractor_rows=(200, 150), dim=16, adapter_out_dim=8, seed=21)
    config = {"device": "cpu", "models": {"good": model_config(data, total_distractors=2, k=10)}}
    run_snakemake(work, config=config)
    return work, data, config, (work / "results/good/similarities.json").read_bytes()


def bad_h5(path, **datasets):
    with h5py.File(path, "w") as fh:
        for name, value in datasets.items():
            fh[name] = value
    return str(path)


def bad_file(work, case):
    """(model overrides, expected message) of one row of the table."""
    d = work / f"bad_{case}"
    d.mkdir(exist_ok=True)
    ids = np.array([b"a/1", b"b/2", b"c/3"])
    if case == "not_hdf5":
        (d / "p.h5").write_text("plain text")
        return {"positive_hdf5": str(d / "p.h5")}, "not an HDF5 file"
    if case == "truncated":
        good = work / "data" / "features_positives.hdf5"
        (d / "p.h5").write_bytes(good.read_bytes()[:300])
        return {"positive_hdf5": str(d / "p.h5")}, "p.h5: HDF5 file is truncated or corrupt"
    if case == "no_features":
        return {"positive_hdf5": bad_h5(d / "p.h5", index=ids)}, "no 'features' dataset"
    if case == "lengths_differ":
        return (
            {"positive_hdf5": bad_h5(d / "p.h5", features=np.ones((2, 16), np.float32), index=ids)},
            "'index' has 3 entries but 'features' has 2 rows",
        )
    if case == "not_2d":
        return {"positive_hdf5": bad_h5(d / "p.h5", features=np.ones(3, np.float32), index=ids)}, "must be 2-D"
    if case == "not_float":
        return (
            {"positive_hdf5": bad_h5(d / "p.h5", features=np.ones((3, 16), np.int32), index=ids)},
            "expected float16 or float32",
        )
    if case == "adapter_not_state_dict":
        import torch

        torch.save([1, 2, 3], d / "a.pth")
        return {"lin_adapt_path": str(d / "a.pth")}, "not a state dict"
    if case == "adapter_garbage":
        (d / "a.pth").write_bytes(b"\x80\x02 no pickle here")
        return {"lin_adapt_path": str(d / "a.pth")}, "a.pth: cannot be loaded as a PyTorch state dict"
    if case == "adapter_keys":
        import torch

        torch.save({"weight": torch.ones(8, 16)}, d / "a.pth")
        return {"lin_adapt_path": str(d / "a.pth")}, "lacks ['layer.weight', 'layer.bias']"
    if case == "adapter_shapes":
        import torch

        torch.save({"layer.weight": torch.ones(8, 16), "layer.bias": torch.ones(5)}, d / "a.pth")
        return {"lin_adapt_path": str(d / "a.pth")}, "inconsistent shapes"
    if case == "adapter_nan":
        import torch

        torch.save({"layer.weight": torch.full((8, 16), float("nan")), "layer.bias": torch.ones(8)}, d / "a.pth")
        return {"lin_adapt_path": str(d / "a.pth")}, "a.pth: layer.weight holds NaN or inf"
    if case == "no_queries":
        write_feature_file(d / "t.h5", np.ones((0, 16)), [], "float16")
        return {"text_query_hdf5": str(d / "t.h5")}, "t.h5: holds no queries (0 rows)"
    if case == "repeated_query_id":
        good = work / "data" / "features_image_queries.hdf5"
        with h5py.File(good) as fh:
            feats, ids = fh["features"][...], [i.decode() for i in fh["index"][...]]
        ids[-1] = ids[0]
        write_feature_file(d / "q.h5", feats, ids, str(feats.dtype))
        return {"query_hdf5": str(d / "q.h5")}, f"q.h5: query id '{ids[0]}' appears 2 times"
    if case == "selection_not_ascii":
        (d / "sel.txt").write_bytes("a/1.jpg\n\u00e9/2.jpg\n".encode())
        return {"selected_ids": str(d / "sel.txt")}, "sel.txt: line 2 is not ASCII"
    if case == "missing_middle_shard":
        return {"total_distractors": 4}, "features_distractors_00002.hdf5"
    if case == "no_idx":
        return (
            {"distractor_hdf5": str(work / "data" / "features_distractors_00000.hdf5")},
            "has no '{idx}' placeholder",
        )
    if case == "k_zero":
        return {"k": 0}, "0 is less than the minimum of 1"
    raise ValueError(case)


TABLE = [
    "not_hdf5",
    "truncated",
    "no_features",
    "lengths_differ",
    "not_2d",
    "not_float",
    "adapter_not_state_dict",
    "adapter_garbage",
    "adapter_keys",
    "adapter_shapes",
    "adapter_nan",
    "no_queries",
    "repeated_query_id",
    "selection_not_ascii",
    "missing_middle_shard",
    "no_idx",
    "k_zero",
]


@pytest.mark.parametrize("case", TABLE)
def test_bad_input_table(good_run, case):
    work, _, config, before = good_run
    overrides, message = bad_file(work, case)
    bad = dict(config["models"]["good"], **overrides)
    cfg = dict(config, models={"good": config["models"]["good"], "bad": bad})
    proc = run_snakemake(work, config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out, out
    assert (work / "results/good/similarities.json").read_bytes() == before
    assert not (work / "results/bad").exists() or not list((work / "results/bad").rglob("*.npz"))


def test_a_bad_file_shared_by_models_is_one_message(good_run):
    """Full and mini-ILIAS models share their files: a bad one is named once,
    with both models; a problem of one model alone stays its own line."""
    work, _, config, before = good_run
    truncated, truncated_message = bad_file(work, "truncated")
    adapter, adapter_message = bad_file(work, "adapter_keys")
    shared = dict(config["models"]["good"], **truncated)
    cfg = dict(config, models={"good": config["models"]["good"], "full": shared, "mini": dict(shared, **adapter)})
    proc = run_snakemake(work, config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    problems = [line for line in out.splitlines() if line.startswith("  - ")]
    assert len(problems) == 2, out
    assert problems[0].startswith("  - models full, mini: ") and truncated_message in problems[0], out
    assert problems[1].startswith("  - model mini: ") and adapter_message in problems[1], out
    assert (work / "results/good/similarities.json").read_bytes() == before


def test_selection_matching_no_distractor_fails_naming_the_file(good_run):
    """No selected id matches: a run that would return the positives alone as
    if normal fails naming the ids file; the other model's result stays."""
    work, data, config, before = good_run
    (work / "no_match.txt").write_text("nothing/here.jpg\n")
    cfg = dict(
        config,
        models={
            "good": config["models"]["good"],
            "mini": dict(config["models"]["good"], selected_ids=str(work / "no_match.txt")),
        },
    )
    proc = run_snakemake(work, config=cfg, check=False)
    assert proc.returncode != 0
    log = (work / "results/mini/logs/merge.log").read_text()
    assert f"{work / 'no_match.txt'}: none of its 1 ids matches a distractor (0 of 350 distractors kept)" in log
    assert not (work / "results/mini/similarities.json").exists()
    assert (work / "results/good/similarities.json").read_bytes() == before


def test_unreadable_file_is_named(good_run):
    """Root reads any file, so the run drops the capabilities that let it (setpriv)."""
    import shutil as sh

    if os.geteuid() != 0 or not sh.which("setpriv"):
        pytest.skip("needs root and setpriv to make a file unreadable to the run")
    work, data, config, before = good_run
    locked = work / "locked_positives.hdf5"
    locked.write_bytes((work / "data" / "features_positives.hdf5").read_bytes())
    locked.chmod(0)
    cfg = dict(
        config,
        models={"good": config["models"]["good"], "bad": dict(config["models"]["good"], positive_hdf5=str(locked))},
    )
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    drop = "-dac_override,-dac_read_search"
    proc = subprocess.run(
        [
            "setpriv",
            "--bounding-set",
            drop,
            "--inh-caps",
            drop,
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(work),
            "--configfile",
            str(work / "config.yaml"),
            "--cores",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "locked_positives.hdf5: cannot be read" in out and "Check its permissions" in out, out
    assert (work / "results/good/similarities.json").read_bytes() == before


# ----------------------------------------------------------------------------
# A configured input that is gone fails every run, dry runs and runs with
# nothing to do included, naming every missing path, and touches no result.
# ----------------------------------------------------------------------------
def results_snapshot(results):
    return {str(p.relative_to(results)): p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_adapted_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("missing")
    data = make_dataset(work / "data", num_instances=6, distractor_rows=(200, 150), dim=16, adapter_out_dim=8, seed=22)
    adapter = work / "adapter.pth"
    adapter.write_bytes(Path(data["lin_adapt_path"]).read_bytes())
    config = {
        "device": "cpu",
        "models": {
            "m": model_config(data, total_distractors=2, k=10, lin_adapt_path=str(adapter)),
            "other": model_config(data, total_distractors=1, k=10),
        },
    }
    run_snakemake(work, config=config)
    return work, data, config, results_snapshot(work / "results")


MISSING_CASES = {
    "positives": ["positive_hdf5"],
    "more_distractors": ["distractor_hdf5"],
    "adapter": ["lin_adapt_path"],
    "all_three": ["positive_hdf5", "distractor_hdf5", "lin_adapt_path"],
}


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry_run"])
@pytest.mark.parametrize("case", list(MISSING_CASES))
def test_missing_inputs_fail_every_run_and_keep_results(finished_adapted_run, case, dry):
    work, data, config, before = finished_adapted_run
    model = dict(config["models"]["m"])
    adapter = Path(model["lin_adapt_path"])
    missing = []
    if "positive_hdf5" in MISSING_CASES[case]:
        model["positive_hdf5"] = str(work / "moved" / "features_positives.hdf5")
        missing.append(model["positive_hdf5"])
    if "distractor_hdf5" in MISSING_CASES[case]:
        model["total_distractors"] = 4  # files 00002 and 00003 do not exist
        missing += [model["distractor_hdf5"].replace("{idx}", f"{i:05d}") for i in (2, 3)]
    hidden = adapter.with_name("hidden.pth")
    if "lin_adapt_path" in MISSING_CASES[case]:
        adapter.rename(hidden)
        missing.append(str(adapter))
    try:
        cfg = dict(config, models={"m": model, "other": config["models"]["other"]})
        proc = run_snakemake(work, *(["-n"] if dry else []), config=cfg, check=False)
    finally:
        if hidden.exists():
            hidden.rename(adapter)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert f"{len(missing)} configured input file(s) do not exist" in out, out
    for path in missing:
        assert "model m: " in out and path in out, (path, out)
    assert "Nothing to be done" not in out
    assert results_snapshot(work / "results") == before


def test_a_missing_file_shared_by_models_is_one_line(finished_adapted_run):
    work, _, config, before = finished_adapted_run
    gone = str(work / "moved" / "features_positives.hdf5")
    models = {name: dict(cfg, positive_hdf5=gone) for name, cfg in config["models"].items()}
    proc = run_snakemake(work, "-n", config=dict(config, models=models), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "1 configured input file(s) do not exist" in out, out
    listed = [line for line in out.splitlines() if line.startswith("  - ")]
    assert listed == [f"  - model m: positive_hdf5; model other: positive_hdf5: {gone}"], out
    assert results_snapshot(work / "results") == before
