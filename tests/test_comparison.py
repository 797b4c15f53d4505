"""Models compared with a reference model: the statistics against independent
computations, and the workflow's comparison outputs end to end."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, planned_jobs, run_snakemake
from ilias_knn import comparison
from ilias_knn.evaluation import instance_of


def equal_weights(n):
    return np.full(n, 1.0 / n)


def test_exact_sign_flip_p_value_enumerated_by_hand():
    # |1 - 2 + 3| = 2; of the 8 sign patterns, |sum| >= 2 for 6, 2, 4, 4, 2, 6 (not the two 0s)
    assert comparison.sign_flip_p_value([1.0, -2.0, 3.0], equal_weights(3), "t") == 6 / 8


@pytest.mark.parametrize("n", [1, 5, 10, 16])
def test_a_model_better_on_every_query_has_p_two_in_two_to_the_n(n):
    d = np.linspace(0.5, 3.0, n)
    assert comparison.sign_flip_p_value(d, equal_weights(n), "t") == 2 / 2**n


def test_holm_on_a_textbook_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone: 0.02, 0.03, 0.06, 0.06
    assert comparison.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


@pytest.mark.parametrize("n", [8, 400])
def test_identical_models_give_delta_0_interval_0_and_p_1(n):
    report = {"map": 50.0, "categories": {}, "queries": {f"i{j}/q": float(j % 7) for j in range(n)}}
    (row,) = comparison.add_holm(comparison.compare("image", "b", "a", report, report, {}))
    assert (row["delta"], row["ci_low"], row["ci_high"], row["p_value"], row["p_holm"]) == (0, 0, 0, 1, 1)
    assert (row["wins"], row["ties"], row["losses"]) == (0, n, 0)


def test_bootstrap_interval_agrees_with_a_plain_percentile_bootstrap():
    rng = np.random.default_rng(3)
    d = rng.normal(1.0, 4.0, size=300)
    low, high = comparison.bootstrap_interval(d, equal_weights(300), "t")
    other = np.random.default_rng(99).integers(0, 300, size=(20000, 300))
    ref_low, ref_high = np.percentile(d[other].mean(axis=1), [2.5, 97.5])
    width = ref_high - ref_low
    assert abs(low - ref_low) < 0.05 * width and abs(high - ref_high) < 0.05 * width
    assert low < d.mean() < high


def test_randomization_p_value_of_many_queries_is_small_for_a_clear_effect_and_not_for_noise():
    rng = np.random.default_rng(4)
    clear = comparison.sign_flip_p_value(rng.normal(2.0, 1.0, 200), equal_weights(200), "clear")
    noise = comparison.sign_flip_p_value(rng.normal(0.0, 1.0, 200), equal_weights(200), "noise")
    assert clear == 1 / (1 + comparison.RESAMPLES) and noise > 0.01
    d = rng.normal(0.3, 1.0, 200)  # a fixed seed: the same p-value every time
    assert comparison.sign_flip_p_value(d, equal_weights(200), "x") == comparison.sign_flip_p_value(
        d, equal_weights(200), "x"
    )


def test_category_rows_weigh_queries_as_the_category_map_does():
    """A category's mAP averages its instances' mean AP: the row's delta is
    exactly the difference of the two category mAPs."""
    ids = ["a/1", "a/2", "a/3", "b/1", "c/1", "c/2"]
    taxonomy = {"a": ("cat0", "x"), "b": ("cat0", "x"), "c": ("cat1", "y")}
    ap_m = dict(zip(ids, [10.0, 20.0, 60.0, 50.0, 5.0, 15.0]))
    ap_r = dict(zip(ids, [30.0, 30.0, 30.0, 20.0, 25.0, 5.0]))

    def category_map(ap, category):
        per_instance = {}
        for q, v in ap.items():
            if taxonomy[q.split("/")[0]][0] == category:
                per_instance.setdefault(q.split("/")[0], []).append(v)
        return float(np.mean([np.mean(v) for v in per_instance.values()]))

    reports = [
        {
            "map": float(np.mean(list(ap.values()))),
            "queries": ap,
            "categories": {c: category_map(ap, c) for c in ("cat0", "cat1")},
        }
        for ap in (ap_m, ap_r)
    ]
    groups = comparison.category_weights(ids, taxonomy, instance_of)
    rows = comparison.compare("image", "m", "r", *reports, groups)
    assert [row["category"] for row in rows] == ["all", "cat0", "cat1"]
    for row in rows:
        assert row["delta"] == pytest.approx(row["map"] - row["reference_map"])
    assert [row["queries"] for row in rows] == [6, 4, 2]
    assert (rows[0]["wins"], rows[0]["ties"], rows[0]["losses"]) == (3, 0, 3)


# ----------------------------------------------------------------------------
# End to end: the demo's models and one more, compared with demo_plain
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compared_run(tmp_path_factory):
    """The demo's models, one more, and two imported from result files of a
    first run (as ILIAS search.py writes them: a pickle, and JSON with text)."""
    work = tmp_path_factory.mktemp("compare")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["models"]["plain_copy"] = dict(config["models"]["demo_plain"], k=80)
    config["device"] = "cpu"
    run_snakemake(work, config=config)
    made = work / "made_elsewhere"
    made.mkdir()
    for source, name in (
        ("demo_adapted_mini/similarities.pkl", "mini.pkl"),
        ("demo_plain/similarities.json", "plain.json"),
        ("demo_plain/similarities_text.json", "plain_text.json"),
    ):
        shutil.copy(work / "results" / source, made / name)
    config["models"]["imported_pickle"] = {"similarities": str(made / "mini.pkl")}
    config["models"]["imported_json"] = {
        "similarities": str(made / "plain.json"),
        "text_similarities": str(made / "plain_text.json"),
    }
    run_snakemake(work, config=config)
    return work, config


@pytest.mark.parametrize(
    "imported,searched", [("imported_pickle", "demo_adapted_mini"), ("imported_json", "demo_plain")]
)
def test_imported_results_are_evaluated_as_the_model_that_made_them(compared_run, imported, searched):
    work, _ = compared_run
    for suffix in ["", "_text"] if imported == "imported_json" else [""]:
        mine = json.loads((work / f"results/{imported}/evaluation{suffix}.json").read_text())
        theirs = json.loads((work / f"results/{searched}/evaluation{suffix}.json").read_text())
        assert mine["queries"] == pytest.approx(theirs["queries"], abs=1e-9)
        assert mine["categories"] == pytest.approx(theirs["categories"])
    assert not (work / f"results/{imported}/shards").exists()
    summary = pd.read_csv(work / "results/summary.tsv", sep="\t")
    assert set(summary[summary["model"] == imported]["query_set"]) == (
        {"image", "text"} if imported == "imported_json" else {"image"}
    )
    table = pd.read_csv(work / "results/comparison.tsv", sep="\t")
    image = json.loads((work / f"results/{imported}/evaluation.json").read_text())
    row = table[(table["model"] == imported) & (table["category"] == "all") & (table["query_set"] == "image")].iloc[0]
    assert row["map"] == pytest.approx(image["map"])
    if searched == "demo_plain":  # the reference itself, imported: no difference at all
        assert (row["delta"], row["p_value"], row["wins"], row["losses"]) == (0, 1, 0, 0)


def test_changing_an_imported_file_reruns_its_evaluation_and_the_comparison(compared_run):
    work, config = compared_run
    path = config["models"]["imported_pickle"]["similarities"]
    original = open(path, "rb").read()
    try:
        shutil.copy(work / "results/demo_adapted_mini/qe2/../similarities.pkl", path)
        with open(path, "ab") as fh:
            fh.write(b"")  # content unchanged: nothing to do
        assert planned_jobs(work, config) == []
        import pickle

        results = pickle.loads(original)
        results["sims"] = results["sims"][::-1].copy()  # other content
        results["ranks"] = results["ranks"][::-1].copy()
        with open(path, "wb") as fh:
            pickle.dump(results, fh)
        assert planned_jobs(work, config) == sorted(
            [("evaluate", "results/imported_pickle/evaluation.json"), ("summarize", "results/summary.tsv")]
            + COMPARISON_JOBS
        )
    finally:
        with open(path, "wb") as fh:
            fh.write(original)


def test_adding_a_model_reruns_its_own_jobs_and_the_cross_model_outputs_only(compared_run):
    work, config = compared_run
    added = dict(config, models=dict(config["models"], added=dict(config["models"]["demo_plain"], k=60)))
    cross_model = {"results/summary.tsv", "results/scale_curves.png"} | {out for _, out in COMPARISON_JOBS}
    jobs = planned_jobs(work, added)
    assert {out for _, out in jobs if not out.startswith("results/added/")} == cross_model, jobs
    assert ("search_shard", "results/added/shards/distractors_00003.npz") in jobs


def test_the_comparison_table_matches_the_evaluations(compared_run):
    work, config = compared_run
    table = pd.read_csv(work / "results/comparison.tsv", sep="\t")
    assert list(table.columns) == comparison.COLUMNS
    assert set(table["model"]) == {"demo_adapted_mini", "plain_copy", "imported_pickle", "imported_json"}
    # demo_adapted_mini has no text queries: no text rows for it
    assert set(table[table["model"] == "demo_adapted_mini"]["query_set"]) == {"image"}
    for (model, query_set), rows in table.groupby(["model", "query_set"]):
        suffix = "_text" if query_set == "text" else ""
        report = json.loads((work / f"results/{model}/evaluation{suffix}.json").read_text())
        reference = json.loads((work / f"results/demo_plain/evaluation{suffix}.json").read_text())
        assert list(rows["category"]) == ["all", *report["categories"]]
        for _, row in rows.iterrows():
            want = report["map"] if row["category"] == "all" else report["categories"][row["category"]]
            ref = reference["map"] if row["category"] == "all" else reference["categories"][row["category"]]
            assert row["map"] == pytest.approx(want) and row["reference_map"] == pytest.approx(ref)
            assert row["delta"] == pytest.approx(want - ref)
            assert row["ci_low"] <= row["delta"] + 1e-9 <= row["ci_high"] + 2e-9
            assert row["wins"] + row["ties"] + row["losses"] == row["queries"]
    assert (table["p_holm"] >= table["p_value"] - 1e-12).all()
    changes = pd.read_csv(work / "results/comparison_queries.tsv", sep="\t")
    assert set(changes["change"]) <= {"gain", "loss"}
    assert (changes.groupby(["model", "query_set", "change"]).size() <= 20).all()
    assert ((changes["change"] == "gain") == (changes["difference"] > 0)).all()


def test_the_latex_table_is_a_booktabs_fragment(compared_run):
    work, _ = compared_run
    tex = (work / "results/comparison.tex").read_text()
    lines = tex.splitlines()
    assert lines[0] == r"\begin{table}[t]" and lines[-1] == r"\end{table}"
    for word in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}{lrrrr}", r"\caption{"):
        assert word in tex
    body = lines[lines.index(r"\midrule") + 1 : lines.index(r"\bottomrule")]
    assert [line.split(" & ")[0] for line in body] == [
        r"demo\_plain (reference)",
        r"demo\_adapted\_mini",
        r"plain\_copy",
        r"imported\_pickle",
        r"imported\_json",
    ]
    assert all(line.count("&") == 4 and line.endswith(r"\\") for line in body)
    assert "10000 resamples" in tex and f"seed {comparison.SEED}" in tex


def test_the_report_holds_the_comparison(compared_run, tmp_path):
    work, config = compared_run
    proc = run_snakemake(work, "--report", str(tmp_path / "report.zip"), config=config)
    import zipfile

    names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
    assert any(name.endswith("comparison.tsv") for name in names), (names, proc.stderr)
    assert any(name.endswith("comparison.png") for name in names)


def test_comparison_reruns_only_what_it_must(compared_run):
    work, config = compared_run
    assert planned_jobs(work, config) == []
    other = dict(config, reference_model="plain_copy")
    assert planned_jobs(work, other) == COMPARISON_JOBS


COMPARISON_JOBS = [
    ("compare_models", "results/comparison.png"),
    ("compare_models", "results/comparison.tex"),
    ("compare_models", "results/comparison.tsv"),
    ("compare_models", "results/comparison_queries.tsv"),
]


@pytest.mark.parametrize(
    "change,message",
    [
        ({"reference_model": "nope"}, "reference_model (nope) is not one of the models"),
        ({"dataset_dir": None}, "reference_model (demo_plain) needs dataset_dir"),
    ],
)
def test_a_bad_reference_is_one_message_before_any_job(tmp_path, change, message):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(change)
    config = {key: value for key, value in config.items() if value is not None}
    config.pop("taxonomy", None) if "dataset_dir" in change else None
    proc = run_snakemake(tmp_path, "-n", config=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out
    assert out.count(message) == 1


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory):
    """The demo searched and formatted (not evaluated): the runs that get a bad
    imported model must leave it as it is."""
    work = tmp_path_factory.mktemp("demo_results")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    run_snakemake(work, "--until", "format_results", config=config)
    return work


def imported_case(work, case):
    """A demo config with one imported model whose file has ``case``'s fault."""
    import pickle

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    results = pickle.loads((work / "results/demo_adapted_mini/similarities.pkl").read_bytes())
    path = work / f"made_elsewhere_{case}.pkl"
    if case == "missing_queries":
        results = {key: results[key][2:] if key != "db_ids" else results[key] for key in results}
        message = "2 of the dataset's 40 image queries have no entry (first: ['inst0000/query_0.jpg', "
    elif case == "wrong_keys":
        results = {"queries": results["query_ids"], "scores": results["sims"]}
        message = "the pickle has no query_ids, db_ids, sims, ranks (it needs query_ids, db_ids, sims, ranks)"
    elif case == "too_few_results":
        results = dict(results, sims=results["sims"][:, :60], ranks=results["ranks"][:, :60])
        message = "60 results per query (the shortest list), fewer than eval_k (100)"
    path.write_bytes(pickle.dumps(results))
    config["models"]["imported"] = {"similarities": str(path)}
    if case == "features_too":
        config["models"]["imported"]["query_hdf5"] = config["models"]["demo_plain"]["query_hdf5"]
        message = "model imported: similarities (results made elsewhere) and query_hdf5 (features to search) together"
    return config, message


@pytest.mark.parametrize("case", ["missing_queries", "wrong_keys", "too_few_results", "features_too"])
def test_a_bad_imported_model_is_one_message_before_any_job(demo_results, case):
    work = demo_results
    config, message = imported_case(work, case)
    files = lambda: sorted(
        (p.relative_to(work), p.stat().st_mtime_ns) for p in work.glob("results/**/*") if p.is_file()
    )
    before = files()
    proc = run_snakemake(work, config=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out
    assert out.count(message) == 1, out
    assert files() == before
