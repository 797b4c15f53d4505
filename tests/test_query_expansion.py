"""Text queries (same pass as image queries) and query expansion (a second
search with expanded queries) against a float64 reference written here."""

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
from ilias_knn.expansion import expand


def test_expand_matches_numpy():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((4, 8))
    x = rng.standard_normal((4, 3, 8))
    s = rng.random((4, 3))
    want = (q + (s[:, :, None] * x).sum(1)) / 4
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(expand(q, x, s), want, atol=1e-6)


@pytest.fixture(scope="module")
def qe_run(tmp_path_factory):
    """Shards of unequal sizes (700, 300, 500 rows); text queries everywhere."""
    work = tmp_path_factory.mktemp("qe")
    data = small_dataset(work / "data", seed=4)
    text = data["text_query_hdf5"]
    config = {
        "device": "cpu",
        "scoring": "bf16",
        "models": {
            "text_only": model_config(data, text_query_hdf5=text, k=30),
            "qe1": model_config(data, text_query_hdf5=text, query_expansion=1, k=30),
            "qe5_adapted_mini": model_config(
                data,
                text_query_hdf5=text,
                query_expansion=5,
                k=40,
                save_as="pickle",
                lin_adapt_path=data["lin_adapt_path"],
                selected_ids=data["selected_ids"],
            ),
            # a save_name that ends like the text results' names
            "named_text": model_config(data, text_query_hdf5=text, k=30, save_name="similarities_text"),
        },
    }
    run_snakemake(work, config=config)
    return work, data, config


@pytest.mark.parametrize("model", ["text_only", "qe1", "qe5_adapted_mini"])
@pytest.mark.parametrize("query_set", ["image", "text"])
def test_results_equal_reference(qe_run, model, query_set):
    work, data, config = qe_run
    cfg = config["models"][model]
    ext = "pkl" if cfg.get("save_as") == "pickle" else "json"
    suffix = "_text" if query_set == "text" else ""
    queries = cfg["text_query_hdf5"] if query_set == "text" else cfg["query_hdf5"]
    n = cfg.get("query_expansion", 0)
    ref = brute_force_expanded(cfg, n, queries) if n else brute_force(cfg, queries_path=queries)
    qids, ids, sims = load_result(work / "results" / model / f"similarities{suffix}.{ext}")
    assert_topk_matches(qids, ids, sims, ref)


def test_a_save_name_ending_in_text_keeps_both_query_sets_apart(qe_run):
    work, _, config = qe_run
    cfg = config["models"]["named_text"]
    folder = work / "results" / "named_text"
    assert sorted(p.name for p in folder.glob("*.json")) == ["similarities_text.json", "similarities_text_text.json"]
    for name, queries in (
        ("similarities_text.json", cfg["query_hdf5"]),
        ("similarities_text_text.json", cfg["text_query_hdf5"]),
    ):
        qids, ids, sims = load_result(folder / name)
        assert_topk_matches(qids, ids, sims, brute_force(cfg, queries_path=queries))


def test_expansion_changes_the_ranking(qe_run):
    """Guards against an expansion that silently does nothing."""
    work, _, config = qe_run
    _, plain, _ = load_result(work / "results/text_only/similarities.json")
    _, expanded, _ = load_result(work / "results/qe1/similarities.json")
    assert plain != expanded


SHARDS = ["positives"] + [f"distractors_{i:05d}" for i in range(3)]


def test_changing_n_reruns_only_the_second_round(qe_run):
    work, _, config = qe_run
    jobs = planned_jobs(work, changed(config, "qe1", query_expansion=2))
    assert jobs == sorted(
        [
            ("expand_queries", "results/qe1/qe2/expanded_queries.npz"),
            ("merge_shards", "results/qe1/qe2/merged.npz"),
            ("format_results", "results/qe1/similarities.json"),
            ("format_results", "results/qe1/similarities_text.json"),
        ]
        + [("search_shard", f"results/qe1/qe2/shards/{s}.npz") for s in SHARDS]
    )
    # switching expansion off reuses the first round entirely: only formatting
    assert planned_jobs(work, changed(config, "qe1", query_expansion=0)) == [
        ("format_results", "results/qe1/similarities.json"),
        ("format_results", "results/qe1/similarities_text.json"),
    ]


def test_adding_text_queries_reruns_that_models_search_once(qe_run):
    work, data, config = qe_run
    new = changed(config, "text_only")
    del new["models"]["text_only"]["text_query_hdf5"]
    # removing them (and, symmetrically, adding them) changes the one-pass search
    jobs = planned_jobs(work, new)
    assert jobs == sorted(
        [("search_shard", f"results/text_only/shards/{s}.npz") for s in SHARDS]
        + [("merge_shards", "results/text_only/merged.npz"), ("format_results", "results/text_only/similarities.json")]
    )


def test_expansion_larger_than_k_is_rejected(tmp_path, qe_run):
    _, data, _ = qe_run
    cfg = {"models": {"m": model_config(data, query_expansion=60, k=50)}}
    proc = run_snakemake(tmp_path, "-n", config=cfg, check=False)
    assert proc.returncode != 0
    assert "query_expansion (60) is larger than k (50)" in proc.stdout + proc.stderr


def test_expansion_beyond_the_database_uses_all_of_it_and_says_so(tmp_path, qe_run):
    """query_expansion 40 over the 32 positives alone: every row expands each query."""
    _, data, _ = qe_run
    cfg = model_config(data, distractor_hdf5=None, query_expansion=40, k=50)
    run_snakemake(tmp_path, config={"device": "cpu", "models": {"m": cfg}})
    qids, ids, sims = load_result(tmp_path / "results" / "m" / "similarities.json")
    assert len(ids[0]) == 32
    assert_topk_matches(qids, ids, sims, brute_force_expanded(cfg, 40))
    log = (tmp_path / "results" / "m" / "logs" / "qe40" / "expand_queries.log").read_text()
    assert "16 queries expanded with their top-32 neighbours (the whole database; query_expansion is 40)" in log
