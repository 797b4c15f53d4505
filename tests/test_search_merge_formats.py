"""Library path (search_shard -> partials -> merge -> formats) against float64 brute force."""

import json
import pickle
import threading

import numpy as np
import pytest

from conftest import assert_topk_matches, brute_force, model_config, retrieved_ids, run_library
from ilias_knn import features
from ilias_knn.adapter import load_adapter
from ilias_knn.bf16 import Bf16Scorer
from ilias_knn.demo import write_feature_file
from ilias_knn.engines import make_scorer, prepare_queries
from ilias_knn.errors import InputError
from ilias_knn.formats import write_json, write_pickle
from ilias_knn.merge import merge_partials
from ilias_knn.merged_result import load_merged, save_merged
from ilias_knn.partials import check_partial_meta, load_partial, save_partial
from ilias_knn.scoring import Fp32Scorer, TorchFp32Scorer
from ilias_knn.shard_search import reads_ahead, search_shard

SCORERS = [("fp32", "cpu"), ("bf16", "cpu"), ("bf16", "filtering"), ("fp32", "torch-cpu")]
SCORER_IDS = ["fp32", "bf16", "bf16_filtering", "torch_fp32"]


def scorer_for(scoring, device):
    """A scorer maker for run_library: every scorer, the GPU's torch float32 one
    included (on the CPU here), and the bf16 one filtering every block it can,
    whatever this CPU's bf16 rate."""
    if device == "torch-cpu":
        return lambda queries, adapter: TorchFp32Scorer(queries, "cpu", adapter)
    if device == "filtering":
        return lambda queries, adapter: Bf16Scorer(queries, "cpu", adapter, measure_costs=False)
    return lambda queries, adapter: make_scorer(scoring, device, queries, adapter)


@pytest.mark.parametrize("scoring", SCORERS, ids=SCORER_IDS)
@pytest.mark.parametrize(
    "extra",
    [{}, {"adapter": True}, {"selected": True}, {"adapter": True, "selected": True, "k": 5000}],
)
def test_library_equals_brute_force(dataset, tmp_path, extra, scoring):
    cfg = model_config(
        dataset,
        lin_adapt_path=dataset["lin_adapt_path"] if extra.get("adapter") else None,
        selected_ids=dataset["selected_ids"] if extra.get("selected") else None,
        k=extra.get("k", 50),
    )
    merged = run_library(cfg, tmp_path, scorer_for(*scoring))
    assert_topk_matches(merged.query_ids, retrieved_ids(merged), merged.sims, brute_force(cfg))


class ThreadRecordingScorer(Fp32Scorer):
    """Notes in ``threads`` the thread each block is prepared in."""

    def __init__(self, queries, adapter, threads):
        super().__init__(queries, adapter)
        self.threads = threads

    def prepare(self, block, keep):
        self.threads.add(threading.current_thread().name)
        return super().prepare(block, keep)


@pytest.mark.parametrize("read_ahead", [False, True])
def test_blocks_are_read_ahead_only_when_asked(dataset, tmp_path, read_ahead):
    """The same exact top-k either way; without read-ahead every block is
    read and prepared in the scoring thread itself."""
    cfg = model_config(dataset, selected_ids=dataset["selected_ids"], k=50)
    threads = set()
    merged = run_library(cfg, tmp_path, lambda q, a: ThreadRecordingScorer(q, a, threads), read_ahead=read_ahead)
    assert_topk_matches(merged.query_ids, retrieved_ids(merged), merged.sims, brute_force(cfg))
    main = threading.current_thread().name
    if read_ahead:
        assert threads and main not in threads
    else:
        assert threads == {main}


def test_one_thread_search_time_is_split_into_disjoint_phases(dataset):
    """Opening (header and id checks), each block's steps, and the ids of the
    rows found are each timed once: without read-ahead they are disjoint
    parts of the search's wall time."""
    _, queries, _ = features.read_all(dataset["query_hdf5"])
    shard = dataset["distractor_hdf5"].replace("{idx}", "00000")
    result = search_shard(queries, shard, 50, block_rows=64, read_ahead=False)
    phases = result.stats["phases"]
    assert set(phases) == {"open", "read", "prepare", "gemm", "select", "ids"}
    assert sum(phases.values()) <= result.stats["seconds"]


def test_one_thread_cpu_jobs_read_inline():
    """A reading thread only where the job has a core for it."""
    assert not reads_ahead("cpu", 1)
    assert reads_ahead("cpu", 2)
    assert reads_ahead("cuda", 1)


def test_merged_file_round_trip_and_positions(dataset, tmp_path):
    """The merged file loads to what was merged; each retrieved id's database
    position names the file and row it is stored at."""
    cfg = model_config(dataset, selected_ids=dataset["selected_ids"], k=50)
    merged = run_library(cfg, tmp_path)
    save_merged(tmp_path / "merged.npz", merged)
    loaded = load_merged(tmp_path / "merged.npz")
    for name in ("query_ids", "db_ids", "sims", "ranks", "db_positions"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(merged, name))
    files, rows = loaded.shard_rows(loaded.db_positions)
    for path in set(files):
        with features.open_feature_file(path) as fh:
            here = np.array([f == path for f in files])
            assert features.read_ids_at(fh, rows[here]).tolist() == loaded.db_ids[here].tolist()
    assert_topk_matches(loaded.query_ids, retrieved_ids(loaded), loaded.sims, brute_force(cfg))


def test_exact_ties_are_ordered_by_database_position(tmp_path):
    """Duplicated vectors in positives and two shards score exactly alike."""
    rng = np.random.default_rng(1)
    base = rng.integers(-2, 3, size=(6, 8)).astype(np.float16)  # small ints: exact products
    q = rng.integers(-2, 3, size=(3, 8)).astype(np.float16)
    write_feature_file(tmp_path / "q.h5", q, ["q/0", "q/1", "q/2"])
    write_feature_file(tmp_path / "p.h5", base, [f"p/{i}" for i in range(6)])
    for s in range(2):
        write_feature_file(tmp_path / f"d_{s:05d}.h5", base[::-1], [f"d{s}/{i}" for i in range(6)])
    cfg = {
        "query_hdf5": str(tmp_path / "q.h5"),
        "positive_hdf5": str(tmp_path / "p.h5"),
        "distractor_hdf5": str(tmp_path / "d_{idx}.h5"),
        "total_distractors": 2,
        "k": 10,
    }
    for scoring in SCORERS:
        merged = run_library(cfg, tmp_path, scorer_for(*scoring), block_rows=4)
        ref = brute_force(cfg)
        assert retrieved_ids(merged).tolist() == ref[3].tolist(), scoring
        np.testing.assert_array_equal(merged.sims, ref[4].astype(np.float32))


@pytest.mark.parametrize("scoring", SCORERS, ids=SCORER_IDS)
@pytest.mark.parametrize("bad", [[3, 150, 299], [250, 251, 299]], ids=["first_block", "later_blocks"])
def test_nan_rows_are_counted_and_named(tmp_path, scoring, bad):
    """Caught in any scorer's first (dense) block or later (filtered) ones."""
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((300, 4)).astype(np.float32)
    feats[bad[0]] = np.nan
    feats[bad[1:], 1] = [np.inf, -np.inf]
    path = tmp_path / "nan.h5"
    write_feature_file(path, feats, [str(i) for i in range(300)], "float32")
    queries = prepare_queries(rng.standard_normal((3, 4)).astype(np.float32), None)
    with pytest.raises(InputError, match=rf"nan.h5: 3 row\(s\).*NaN or inf.*\{bad}"):
        search_shard(queries, path, 5, scorer_for(*scoring)(queries, None), block_rows=64)


@pytest.mark.filterwarnings("error")  # one message: ours, not numpy's overflow warning beside it
@pytest.mark.parametrize("scoring", ["fp32", "bf16"])
def test_scores_overflowing_float32_are_named(tmp_path, scoring):
    path = tmp_path / "huge.h5"
    write_feature_file(path, np.full((10, 4), 3e19, np.float32), [str(i) for i in range(10)], "float32")
    queries = prepare_queries(np.full((2, 4), 3e19, np.float32), None)
    with pytest.raises(InputError, match="huge.h5: scores overflow float32"):
        search_shard(queries, path, 5, make_scorer(scoring, "cpu", queries))


def test_non_ascii_ids_are_refused_before_scoring(tmp_path):
    import h5py

    from ilias_knn.scoring import Fp32Scorer

    class ScoringFails(Fp32Scorer):
        def prepare(self, block, keep):
            pytest.fail("read a block of a file with bad ids")

    path = tmp_path / "ids.h5"
    with h5py.File(path, "w") as fh:
        fh["features"] = np.ones((3, 4), np.float32)
        fh["index"] = np.array([b"d/0", "d/\u00e9".encode(), b"d/2"], dtype="S4")
    queries = prepare_queries(np.ones((2, 4), np.float32), None)
    with pytest.raises(InputError, match=r"ids\.h5: 'index' holds ids that are not ASCII"):
        search_shard(queries, path, 2, ScoringFails(queries))


def test_dimension_mismatch_is_named(dataset):
    queries = prepare_queries(np.ones((2, 5), np.float32), None)
    with pytest.raises(InputError, match="32-d but the queries are 5-d"):
        search_shard(queries, dataset["positive_hdf5"], 5)


def test_adapter_dimension_mismatch(dataset, tmp_path):
    from ilias_knn.demo import write_adapter

    write_adapter(tmp_path / "a.pth", 16, 8)
    adapter = load_adapter(tmp_path / "a.pth")
    queries = prepare_queries(np.ones((2, 8), np.float32), None)
    with pytest.raises(InputError, match="adapter expects 16-d input but .* has 32-d"):
        search_shard(queries, dataset["positive_hdf5"], 5, adapter=adapter, adapter_path="a.pth")


def test_stale_or_damaged_partials_are_refused(dataset, tmp_path):
    cfg = model_config(dataset)
    merged_paths = []
    _, qf, qids = features.read_all(cfg["query_hdf5"])
    result = search_shard(prepare_queries(qf, None), cfg["positive_hdf5"], 7)
    path = tmp_path / "p.npz"
    save_partial(path, result, qids, {"k": 7})
    meta, _ = load_partial(path)
    with pytest.raises(InputError, match="k: file has 7, expected 50"):
        check_partial_meta(path, meta, {"k": 50})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="damaged"):
        merge_partials([str(path)], 7)
    assert not merged_paths


def test_empty_database_after_filtering(tmp_path, dataset):
    sel = tmp_path / "sel.txt"
    sel.write_text("nothing-matches\n")
    write_feature_file(tmp_path / "p.h5", np.ones((0, 32), np.float16), [])
    cfg = model_config(dataset, positive_hdf5=str(tmp_path / "p.h5"), selected_ids=str(sel))
    with pytest.raises(InputError, match="database is empty after filtering"):
        run_library(cfg, tmp_path)


def test_formats_roundtrip(dataset, tmp_path):
    cfg = model_config(dataset, k=20)
    merged = run_library(cfg, tmp_path)
    ref = brute_force(cfg)
    write_json(tmp_path / "r.json", merged)
    data = json.loads((tmp_path / "r.json").read_text())
    assert list(data) == ref[0].tolist()
    ids = [list(v.keys()) for v in data.values()]
    scores = [list(v.values()) for v in data.values()]
    assert_topk_matches(list(data), ids, scores, ref)
    write_pickle(tmp_path / "r.pkl", merged)
    with open(tmp_path / "r.pkl", "rb") as fh:
        res = pickle.load(fh)
    assert set(res) == {"query_ids", "db_ids", "sims", "ranks"}
    assert res["sims"].dtype == np.float32 and res["sims"].shape == (len(ref[0]), 20)
    assert_topk_matches(res["query_ids"], res["db_ids"][res["ranks"]], res["sims"], ref)
    # every db id is used: db_ids holds the retrieved ids only
    assert set(np.unique(res["ranks"])) == set(range(len(res["db_ids"])))
