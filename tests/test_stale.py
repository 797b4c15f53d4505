"""Never stale: after changed inputs (also under an old modification time) and
deleted or damaged intermediates, the run after the documented fix gives the
results of a fresh run on the current files, and recomputes only what is
missing or out of date. Every piece of advice is followed literally."""

import os
import re
import shutil

import h5py
import numpy as np
import pytest

from conftest import (
    assert_topk_matches,
    brute_force,
    brute_force_expanded,
    changed,
    load_result,
    model_config,
    planned_jobs,
    run_snakemake,
    small_dataset,
)
from ilias_knn.demo import write_adapter, write_feature_file
from ilias_knn.fingerprint import FingerprintCache, compute_fingerprint
from ilias_knn.resources import attempt_factor, grown_with_attempt

D = [f"distractors_{i:05d}" for i in range(3)]


def shard_file(data, i):
    return data["distractor_hdf5"].replace("{idx}", f"{i:05d}")


def new_features(path, seed):
    """The file extracted again: same ids and shape, other features."""
    with h5py.File(path) as fh:
        ids = [i.decode() for i in fh["index"][...]]
        shape = fh["features"].shape
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal(shape).astype(np.float32)
    write_feature_file(path, feats / np.linalg.norm(feats, axis=1, keepdims=True), ids)


def keep_old_times(path, old):
    """Content replaced as rsync -a / cp -p do: the old modification time kept."""
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))


def advice_in(out, path, work):
    """The workflow's advice for ``path``, as it printed it (relative to ``work``)."""
    match = re.search(re.escape(os.path.relpath(path, work)) + r": [^\n]*?(Delete it and run again)", out)
    assert match, out
    return match[1]


def check_results(work, cfg, expanded=0):
    qids, ids, sims = load_result(work / "results/m/similarities.json")
    ref = brute_force_expanded(cfg, expanded) if expanded else brute_force(cfg)
    assert_topk_matches(qids, ids, sims, ref)


def assert_the_advice_works(work, cfg, path, expanded=0):
    """The run fails naming ``path`` with "Delete it and run again"; done so,
    the results are right and a further run has nothing to do. Returns the
    failed run's output."""
    proc = run_snakemake(work, config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert advice_in(out, path, work) == "Delete it and run again"
    path.unlink()
    run_snakemake(work, config=cfg)
    check_results(work, cfg["models"]["m"], expanded=expanded)
    assert planned_jobs(work, cfg) == []
    return out


def search_jobs(shards, stage=""):
    return [("search_shard", f"results/m/{stage}shards/{s}.npz") for s in shards]


def test_changed_input_and_damaged_partial_end_in_current_results(tmp_path):
    """The issue's sequence: file 00000 re-extracted and partial 00002 damaged;
    the merge fails and says to delete the partial; after that, the results
    are those of the current files (not the old ones reported as current)."""
    data = small_dataset(tmp_path / "data")
    cfg = {"device": "cpu", "models": {"m": model_config(data, k=50)}}
    run_snakemake(tmp_path, config=cfg)
    new_features(shard_file(data, 0), seed=7)
    partial = tmp_path / "results/m/shards/distractors_00002.npz"
    partial.write_bytes(partial.read_bytes()[:1000])

    proc = run_snakemake(tmp_path, config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert advice_in(out, partial, tmp_path) == "Delete it and run again"
    # the failed job's own line is in the run's last lines (after it, only
    # Snakemake's log path, elapsed time and closing words)
    tail = "\n".join(out.strip().splitlines()[-8:])
    assert "The run failed. What the failed jobs said:" in tail, out
    assert "results/m/shards/distractors_00002.npz: partial result is damaged" in tail, out

    partial.unlink()
    assert planned_jobs(tmp_path, cfg) == sorted(
        search_jobs([D[2]])
        + [("merge_shards", "results/m/merged.npz"), ("format_results", "results/m/similarities.json")]
    )
    run_snakemake(tmp_path, config=cfg)
    check_results(tmp_path, cfg["models"]["m"])
    assert planned_jobs(tmp_path, cfg) == []


@pytest.fixture
def finished(tmp_path):
    data = small_dataset(tmp_path / "data")
    adapter = tmp_path / "adapter.pth"
    shutil.copy(data["lin_adapt_path"], adapter)
    cfg = {"device": "cpu", "models": {"m": model_config(data, k=50, lin_adapt_path=str(adapter))}}
    run_snakemake(tmp_path, config=cfg)
    return tmp_path, data, cfg


def test_a_distractor_file_replaced_under_its_old_time_is_searched_again(finished):
    work, data, cfg = finished
    path = shard_file(data, 1)
    old = os.stat(path)
    new_features(path, seed=11)
    keep_old_times(path, old)
    assert os.stat(path).st_mtime_ns == old.st_mtime_ns
    assert planned_jobs(work, cfg) == sorted(
        search_jobs([D[1]])
        + [("merge_shards", "results/m/merged.npz"), ("format_results", "results/m/similarities.json")]
    )
    run_snakemake(work, config=cfg)
    check_results(work, cfg["models"]["m"])
    # the partial records what it was computed from
    with np.load(work / "results/m/shards/distractors_00001.npz") as npz:
        import json

        meta = json.loads(str(npz["meta"]))
    record = meta["inputs"][path]
    assert record["size"] == os.path.getsize(path) and record["fingerprint"] == compute_fingerprint(path)
    assert planned_jobs(work, cfg) == []


def test_an_adapter_replaced_under_its_old_time_reruns_the_model(finished):
    work, data, cfg = finished
    adapter = cfg["models"]["m"]["lin_adapt_path"]
    old = os.stat(adapter)
    write_adapter(adapter, 32, 24, seed=5)
    keep_old_times(adapter, old)
    assert planned_jobs(work, cfg) == sorted(
        search_jobs(["positives", *D])
        + [("merge_shards", "results/m/merged.npz"), ("format_results", "results/m/similarities.json")]
    )
    run_snakemake(work, config=cfg)
    check_results(work, cfg["models"]["m"])


QE = "qe2/"
FIRST_MERGE = ("merge_shards", "results/m/merged.npz")
EXPAND = ("expand_queries", "results/m/qe2/expanded_queries.npz")
QE_SEARCHES = search_jobs(["positives", *D], QE)
QE_MERGE = ("merge_shards", "results/m/qe2/merged.npz")
FORMAT = ("format_results", "results/m/similarities.json")
DELETED = {
    "first_partial": (
        "shards/distractors_00001.npz",
        search_jobs([D[1]]) + [FIRST_MERGE, EXPAND, *QE_SEARCHES, QE_MERGE, FORMAT],
    ),
    "first_merged": ("merged.npz", [FIRST_MERGE, EXPAND, *QE_SEARCHES, QE_MERGE, FORMAT]),
    "expanded_queries": ("qe2/expanded_queries.npz", [EXPAND, *QE_SEARCHES, QE_MERGE, FORMAT]),
    "second_partial": ("qe2/shards/positives.npz", search_jobs(["positives"], QE) + [QE_MERGE, FORMAT]),
    "second_merged": ("qe2/merged.npz", [QE_MERGE, FORMAT]),
}


@pytest.fixture(scope="module")
def expanded_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("expanded")
    data = small_dataset(work / "data")
    cfg = {"device": "cpu", "models": {"m": model_config(data, k=30, query_expansion=2)}}
    run_snakemake(work, config=cfg)
    return work, cfg


@pytest.mark.parametrize("case", list(DELETED))
def test_a_deleted_intermediate_is_made_again_with_what_follows(expanded_run, case):
    work, cfg = expanded_run
    name, expected = DELETED[case]
    (work / "results/m" / name).unlink()
    assert planned_jobs(work, cfg) == sorted(expected)
    run_snakemake(work, config=cfg)
    assert (work / "results/m" / name).is_file()
    check_results(work, cfg["models"]["m"], expanded=2)


@pytest.mark.parametrize("name", ["merged.npz", "qe2/expanded_queries.npz", "qe2/merged.npz"])
def test_a_damaged_intermediate_is_refused_and_the_advice_works(expanded_run, name):
    """A file damaged after it was written (a newer time): the job that reads
    it names it and says to delete it; done, the results are right."""
    work, cfg = expanded_run
    damaged = work / "results/m" / name
    damaged.write_bytes(b"not a zip file")
    assert_the_advice_works(work, cfg, damaged, expanded=2)


# ----------------------------------------------------------------------------
# Partials brought from another run (copied with their times, cp -p / rsync -a):
# Snakemake's records say they are current, the merge must not believe it
# ----------------------------------------------------------------------------
def subset_queries(path, out, count, seed=None):
    """The first ``count`` queries of ``path`` (other ids), or all of them with
    other features (same ids) when ``seed`` is given."""
    with h5py.File(path) as fh:
        ids = [i.decode() for i in fh["index"][...]][:count]
        feats = fh["features"][...].astype(np.float32)[:count]
    if seed is not None:
        feats = np.random.default_rng(seed).standard_normal(feats.shape).astype(np.float32)
    write_feature_file(out, feats / np.linalg.norm(feats, axis=1, keepdims=True), ids)
    return str(out)


def run_elsewhere(tmp_path, cfg):
    other = tmp_path / "other"
    other.mkdir()
    run_snakemake(other, config=cfg)
    return other


def test_partials_of_other_settings_are_all_named_and_the_advice_works(tmp_path):
    data = small_dataset(tmp_path / "data")
    cfg = {"device": "cpu", "models": {"m": model_config(data, k=50)}}
    run_snakemake(tmp_path, config=cfg)
    other = run_elsewhere(tmp_path, changed(cfg, "m", k=20))
    brought = [tmp_path / f"results/m/shards/{D[i]}.npz" for i in (0, 2)]
    for path in brought:
        shutil.copy2(other / "results/m/shards" / path.name, path)

    proc = run_snakemake(tmp_path, config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for path in brought:  # all at once, each with its fix
        assert advice_in(out, path, tmp_path) == "Delete it and run again"
    assert "k: file has 20, expected 50" in out, out
    for path in brought:
        path.unlink()
    assert planned_jobs(tmp_path, cfg) == sorted(
        search_jobs([D[0], D[2]])
        + [("merge_shards", "results/m/merged.npz"), ("format_results", "results/m/similarities.json")]
    )
    run_snakemake(tmp_path, config=cfg)
    check_results(tmp_path, cfg["models"]["m"])
    assert planned_jobs(tmp_path, cfg) == []


def test_a_partial_of_queries_with_the_same_ids_and_other_features_is_refused(tmp_path):
    data = small_dataset(tmp_path / "data")
    cfg = {"device": "cpu", "models": {"m": model_config(data, k=50)}}
    run_snakemake(tmp_path, config=cfg)
    queries = subset_queries(data["query_hdf5"], tmp_path / "other_queries.hdf5", None, seed=5)
    other = run_elsewhere(tmp_path, changed(cfg, "m", query_hdf5=queries))
    brought = tmp_path / f"results/m/shards/{D[1]}.npz"
    shutil.copy2(other / "results/m/shards" / brought.name, brought)
    out = assert_the_advice_works(tmp_path, cfg, brought)
    assert f"queries: not the current content of {data['query_hdf5']}" in out, out


def test_an_expansion_partial_of_other_queries_is_refused_and_the_advice_works(tmp_path):
    """In an expansion round the queries are the workflow's own: the query ids
    tell, and the advice names the partials to delete."""
    data = small_dataset(tmp_path / "data")
    cfg = {"device": "cpu", "models": {"m": model_config(data, k=30, query_expansion=2)}}
    run_snakemake(tmp_path, config=cfg)
    queries = subset_queries(data["query_hdf5"], tmp_path / "fewer_queries.hdf5", 8)
    other = run_elsewhere(tmp_path, changed(cfg, "m", query_hdf5=queries))
    brought = tmp_path / f"results/m/qe2/shards/{D[1]}.npz"
    shutil.copy2(other / "results/m/qe2/shards" / brought.name, brought)

    proc = run_snakemake(tmp_path, config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    match = re.search(r"Delete the partials of this model \((\S+)\) and run again", out)
    assert match and match[1] == "results/m/qe2/shards/*.npz", out
    for path in tmp_path.glob(match[1]):
        path.unlink()
    assert planned_jobs(tmp_path, cfg) == sorted(
        search_jobs(["positives", *D], "qe2/")
        + [("merge_shards", "results/m/qe2/merged.npz"), ("format_results", "results/m/similarities.json")]
    )
    run_snakemake(tmp_path, config=cfg)
    check_results(tmp_path, cfg["models"]["m"], expanded=2)
    assert planned_jobs(tmp_path, cfg) == []


def test_a_merged_file_of_other_queries_is_refused_by_the_expansion_and_the_advice_works(tmp_path):
    data = small_dataset(tmp_path / "data")
    cfg = {"device": "cpu", "models": {"m": model_config(data, k=30, query_expansion=2)}}
    run_snakemake(tmp_path, config=cfg)
    queries = subset_queries(data["query_hdf5"], tmp_path / "fewer_queries.hdf5", 8)
    other = run_elsewhere(tmp_path, changed(cfg, "m", query_hdf5=queries, query_expansion=0))
    brought = tmp_path / "results/m/merged.npz"
    shutil.copy2(other / "results/m/merged.npz", brought)
    assert_the_advice_works(tmp_path, cfg, brought, expanded=2)


# ----------------------------------------------------------------------------
# Inputs that are surely broken
# ----------------------------------------------------------------------------
def test_zero_norm_queries_are_refused_before_any_search(tmp_path):
    data = small_dataset(tmp_path / "data")
    with h5py.File(data["query_hdf5"]) as fh:
        feats, ids = fh["features"][...], [i.decode() for i in fh["index"][...]]
    feats[[1, 3]] = 0
    bad = tmp_path / "queries.hdf5"
    write_feature_file(bad, feats, ids)
    cfg = {"device": "cpu", "models": {"m": model_config(data, query_hdf5=str(bad))}}
    proc = run_snakemake(tmp_path, config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{bad}: 2 query row(s) of zero norm (first at rows [1, 3])" in out, out
    assert "nothing was searched" in out
    assert not list(tmp_path.glob("results/**/*.npz"))


def test_zero_norm_database_rows_are_counted(tmp_path):
    data = small_dataset(tmp_path / "data")
    path = shard_file(data, 1)
    with h5py.File(path) as fh:
        feats, ids = fh["features"][...], [i.decode() for i in fh["index"][...]]
    feats[[4, 250]] = 0
    write_feature_file(path, feats, ids)
    cfg = {"device": "cpu", "models": {"m": model_config(data, k=50)}}
    proc = run_snakemake(tmp_path, config=cfg)
    line = f"{path}: 2 database row(s) of zero norm (first at rows [4, 250])"
    assert line in (tmp_path / "results/m/logs/merge.log").read_text()
    assert "Warnings:" in proc.stdout and f"model m: {line}" in proc.stdout, proc.stdout
    assert "2 kept row(s) of zero norm" in (tmp_path / "results/m/logs/search_distractors_00001.log").read_text()
    check_results(tmp_path, cfg["models"]["m"])


def test_selected_ids_that_match_nothing_are_counted(tmp_path):
    data = small_dataset(tmp_path / "data")
    listed = [line for line in open(data["selected_ids"]).read().split() if line]
    selection = tmp_path / "selected.txt"
    selection.write_text("\n".join(listed + ["nope/a", "nope/b", "nope/c"]) + "\n")
    cfg = {"device": "cpu", "models": {"m": model_config(data, k=20, selected_ids=str(selection))}}
    proc = run_snakemake(tmp_path, config=cfg)
    line = f"{selection}: 3 of its {len(listed) + 3} ids match no distractor (first: 'nope/a', 'nope/b', 'nope/c')"
    assert line in (tmp_path / "results/m/logs/merge.log").read_text()
    assert line in proc.stdout
    check_results(tmp_path, cfg["models"]["m"])


def test_selected_ids_that_match_no_distractor_fail_the_run(tmp_path):
    data = small_dataset(tmp_path / "data")
    selection = tmp_path / "selected.txt"
    selection.write_text("nothing/here.jpg\nnot/there.jpg\n")
    cfg = {"device": "cpu", "models": {"m": model_config(data, k=20, selected_ids=str(selection))}}
    proc = run_snakemake(tmp_path, config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{selection}: none of its 2 ids matches a distractor (0 of 1500 distractors kept)" in out, out
    assert not (tmp_path / "results/m/similarities.json").exists()


def test_an_adapter_torch_cannot_load_is_one_line(tmp_path):
    data = small_dataset(tmp_path / "data")
    adapter = tmp_path / "adapter.pth"
    adapter.write_bytes(b"\x80\x02 this is no state dict")
    cfg = {"device": "cpu", "models": {"m": model_config(data, lin_adapt_path=str(adapter))}}
    proc = run_snakemake(tmp_path, config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    lines = [line for line in out.splitlines() if str(adapter) in line]
    assert lines and all("cannot be loaded as a PyTorch state dict" in line for line in lines), out
    assert "Save the adapter with torch.save(layer.state_dict(), path)." in lines[0]
    assert "weights_only" not in out
    assert not list(tmp_path.glob("results/**/*.npz"))


# ----------------------------------------------------------------------------
# Fingerprints and retries
# ----------------------------------------------------------------------------
def test_fingerprint_sees_a_change_anywhere_in_a_small_file_and_in_a_large_one(tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(bytes(1000))
    before = compute_fingerprint(small)
    small.write_bytes(bytes(999) + b"\x01")
    assert compute_fingerprint(small) != before
    large = tmp_path / "large.bin"
    with open(large, "wb") as fh:
        fh.truncate(64 << 20)
    before = compute_fingerprint(large)
    with open(large, "r+b") as fh:  # a new model's features differ everywhere; one sample is enough
        fh.seek((64 << 20) // 2)
        fh.write(b"\x01" * 300_000)
    assert compute_fingerprint(large) != before


def test_fingerprint_cache_trusts_an_unchanged_file_and_rereads_a_rewritten_one(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 100)
    cache = FingerprintCache(tmp_path / "cache", writable=True)
    first = cache.fingerprint(path)
    assert FingerprintCache(tmp_path / "cache").fingerprint(path) == first  # from the stored entry
    old = os.stat(path)
    path.write_bytes(b"b" * 100)
    keep_old_times(path, old)  # same size and modification time: only ctime tells
    assert FingerprintCache(tmp_path / "cache").fingerprint(path) == compute_fingerprint(path) != first
    assert FingerprintCache(tmp_path / "cache").fingerprint(tmp_path / "absent") is None


@pytest.mark.parametrize("attempt,expected", [(1, 4096), (2, 6144), (3, 9216)])
def test_retries_ask_for_more_memory_and_time(attempt, expected):
    assert grown_with_attempt(4096)(None, attempt) == expected
    assert attempt_factor(attempt) == expected / 4096
