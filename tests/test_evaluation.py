"""ILIAS evaluation: AP by hand, the full protocol against a loop-based
implementation written here, the scale curve against fresh searches, and what
reruns when evaluation settings change."""

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import brute_force, model_config, planned_job_list, run_snakemake
from ilias_knn.demo import make_dataset
from ilias_knn.evaluation import (
    CLUTTER_EDGES,
    SCALE_EDGES,
    average_precision,
    read_ground_truth,
)


def ap_of(hits, k, num_positives, scores=None):
    hits = np.array([hits], bool)
    scores = np.array([scores if scores is not None else -np.arange(hits.shape[1], dtype=float)])
    ap, oracle = average_precision(hits, scores, np.ones_like(hits), k, np.array([num_positives]))
    return ap[0], oracle[0]


def test_ap_by_hand():
    # hits at ranks 1 and 3, 2 positives: (1/1 + 2/3) / 2
    assert ap_of([1, 0, 1, 0], k=4, num_positives=2)[0] == pytest.approx((1 + 2 / 3) / 2)
    # 5 positives but k = 4: divide by min(k, P) = 4; hits at 2 and 4
    assert ap_of([0, 1, 0, 1], k=4, num_positives=5)[0] == pytest.approx((1 / 2 + 2 / 4) / 4)
    # the cut at k: a hit at rank 5 does not count with k = 4
    assert ap_of([1, 0, 0, 0, 1], k=4, num_positives=2)[0] == pytest.approx(1 / 2)
    # no hit
    assert ap_of([0, 0, 0], k=3, num_positives=2) == (0.0, 0.0)
    # a tie of a miss and a hit at ranks 1-2 counts as one step: precision 1/2
    assert ap_of([0, 1, 1], k=3, num_positives=2, scores=[0.9, 0.9, 0.5])[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # oracle: hits / list length * k / P
    assert ap_of([1, 0, 1, 0], k=4, num_positives=2)[1] == pytest.approx(2 / 4 * 4 / 2)


# ----------------------------------------------------------------------------
# An independent, loop-based implementation of the ILIAS protocol
# ----------------------------------------------------------------------------
def reference_ap(ranked_ids, scores, positives, k):
    """ranked_ids sorted by descending score; positives: set of ids."""
    ranked_ids, scores = list(ranked_ids)[:k], list(scores)[:k]
    hits = [d in positives for d in ranked_ids]
    if not any(hits):
        return 0.0, 0.0
    total = 0.0
    for i, hit in enumerate(hits):
        if hit:
            end = i
            while end + 1 < len(scores) and scores[end + 1] == scores[i]:
                end += 1
            total += sum(hits[: end + 1]) / (end + 1)
    oracle = sum(hits) / len(hits) * k / len(positives)
    return total / min(k, len(positives)), oracle


def reference_report(qids, ranked, scores, gt_lines, taxonomy, k):
    info = {}
    for line in gt_lines:
        pid, scale, clutter = line.split(",")
        info[pid] = (float(scale), float(clutter))
    gt = defaultdict(set)
    for pid in info:
        gt[pid.split("/")[0]].add(pid)
    aps, oracles, per_inst = {}, [], defaultdict(list)
    groups = {"scale": defaultdict(list), "clutter": defaultdict(list)}
    for q, ids, sc in zip(qids, ranked, scores):
        inst = q.split("/")[0]
        ap, oracle = reference_ap(ids, sc, gt[inst], k)
        aps[q] = ap * 100
        oracles.append(oracle * 100)
        per_inst[inst].append(ap * 100)
        for name, edges, col in (("scale", SCALE_EDGES, 0), ("clutter", CLUTTER_EDGES, 1)):
            for lo, hi in zip(edges[:-1], edges[1:]):
                out = {p for p in gt[inst] if not lo <= info[p][col] < hi}
                if gt[inst] - out:
                    kept = [(d, s) for d, s in zip(ids, sc) if d not in out]
                    ap_g, _ = reference_ap([d for d, _ in kept], [s for _, s in kept], gt[inst] - out, k)
                    groups[name][f"{lo}-{hi}"].append(ap_g * 100)
    cats, subs = defaultdict(list), defaultdict(list)
    for c, subtree in taxonomy.items():
        for sc_name, grp in subtree.items():
            for members in grp.values():
                for inst in members:
                    if inst in per_inst:
                        cats[c].append(np.mean(per_inst[inst]))
                        subs[f"{c}-{sc_name}"].append(np.mean(per_inst[inst]))
    return {
        "map": np.mean(list(aps.values())),
        "oracle": np.mean(oracles),
        "queries": aps,
        "scale": {g: np.mean(v) for g, v in groups["scale"].items()},
        "clutter": {g: np.mean(v) for g, v in groups["clutter"].items()},
        "categories": {c: np.mean(v) for c, v in cats.items()},
        "subcategories": {c: np.mean(v) for c, v in subs.items()},
    }


def assert_reports_equal(got, want):
    assert set(got) >= {"map", "oracle", "queries", "scale", "clutter", "categories", "subcategories"}
    for key in ("map", "oracle"):
        assert got[key] == pytest.approx(want[key], abs=1e-9)
    for key in ("queries", "scale", "clutter", "categories", "subcategories"):
        assert set(got[key]) == set(want[key]), key
        for name in want[key]:
            assert got[key][name] == pytest.approx(want[key][name], abs=1e-9), (key, name)


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("eval")
    data = make_dataset(
        work / "data",
        num_instances=10,
        queries_per_instance=3,
        positives_per_instance=6,
        distractor_rows=(400, 250, 300),
        dim=24,
        noise=0.4,
        seed=8,
    )
    config = {
        "device": "cpu",
        "dataset_dir": data["dataset_dir"],
        "taxonomy": data["taxonomy"],
        "eval_k": 30,
        "scale_points": [0, 1, 2],
        "models": {
            "m": model_config(data, text_query_hdf5=data["text_query_hdf5"], k=60),
            "mini": model_config(data, selected_ids=data["selected_ids"], k=60, save_as="pickle"),
            "short": model_config(data, k=20),  # searched with a k below eval_k
            "qe": model_config(data, query_expansion=2, k=60),
        },
    }
    run_snakemake(work, config=config)
    return work, data, config


def gt_lines(data):
    return (Path(data["dataset_dir"]) / "image_ids/positive_ids.txt").read_text().split()


@pytest.mark.parametrize("model,query_set", [("m", "image"), ("m", "text"), ("mini", "image")])
def test_evaluation_equals_reference(eval_run, model, query_set):
    work, data, config = eval_run
    cfg = config["models"][model]
    suffix = "_text" if query_set == "text" else ""
    queries = cfg["text_query_hdf5"] if query_set == "text" else cfg["query_hdf5"]
    qids, _, _, top_ids, top_scores = brute_force(cfg, queries_path=queries)
    taxonomy = json.loads(open(data["taxonomy"]).read())
    want = reference_report(qids, top_ids, top_scores, gt_lines(data), taxonomy, config["eval_k"])
    got = json.loads((work / f"results/{model}/evaluation{suffix}.json").read_text())
    assert_reports_equal(got, want)
    assert 0 < got["map"] < 100  # a dataset where the protocol has something to measure


def test_scale_curve_equals_fresh_searches(eval_run):
    work, data, config = eval_run
    curve = pd.read_csv(work / "results/mini/scale_curve.tsv", sep="\t")
    assert curve["distractor_shards"].tolist() == [0, 1, 2, 3]
    for n, got in zip(curve["distractor_shards"], curve["map"]):
        cfg = dict(config["models"]["mini"], total_distractors=n)
        if n == 0:
            cfg.pop("distractor_hdf5")
        qids, _, _, top_ids, top_scores = brute_force(cfg)
        want = reference_report(qids, top_ids, top_scores, gt_lines(data), {}, config["eval_k"])["map"]
        assert got == pytest.approx(want, abs=1e-9)
    assert curve["map"].iloc[0] > curve["map"].iloc[-1]  # distractors do hurt


def test_summary_has_a_row_per_model_and_query_set(eval_run):
    work, _, _ = eval_run
    table = pd.read_csv(work / "results/summary.tsv", sep="\t")
    assert list(zip(table["model"], table["query_set"])) == [
        ("m", "image"),
        ("m", "text"),
        ("mini", "image"),
        ("short", "image"),
        ("qe", "image"),
    ]
    assert table["k"].tolist() == [30, 30, 30, 20, 30]
    for (model, query_set), value in zip(zip(table["model"], table["query_set"]), table["map"]):
        suffix = "_text" if query_set == "text" else ""
        report = json.loads((work / f"results/{model}/evaluation{suffix}.json").read_text())
        assert value == pytest.approx(report["map"])
        assert table.loc[
            (table["model"] == model) & (table["query_set"] == query_set), "category0"
        ].item() == pytest.approx(report["categories"]["category0"])
    assert (work / "results/scale_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_k_above_a_models_k_evaluates_at_that_k(eval_run):
    work, data, config = eval_run
    cfg = config["models"]["short"]
    qids, _, _, top_ids, top_scores = brute_force(cfg)
    got = json.loads((work / "results/short/evaluation.json").read_text())
    assert got["k"] == 20
    taxonomy = json.loads(open(data["taxonomy"]).read())
    assert_reports_equal(got, reference_report(qids, top_ids, top_scores, gt_lines(data), taxonomy, 20))
    assert 0 < got["oracle"] <= 100
    log = (work / "results/short/logs/evaluation.log").read_text()
    assert "eval_k is 30 but this model was searched with k = 20: evaluating mAP@20" in log
    curve = pd.read_csv(work / "results/short/scale_curve.tsv", sep="\t")
    assert curve["k"].tolist() == [20] * len(curve) and (curve["oracle"] <= 100).all()


def test_evaluation_at_more_than_the_database_caps_k_at_the_list():
    from ilias_knn.evaluation import GroundTruth, evaluate_merged
    from ilias_knn.merged_result import MergedResult

    gt = GroundTruth(
        np.array(["a/1", "a/2", "b/1"]),
        np.array(["a", "a", "b"]),
        np.full(3, 0.1),
        np.full(3, 10.0),
        {"a": 2, "b": 1},
        {},
    )
    # a database of 4 rows searched with k = 1000: 4 results per query
    merged = MergedResult(
        np.array(["a/q", "b/q"]),
        np.array([b"a/1", b"x/1", b"b/1", b"a/2"]),
        np.array([[0.9, 0.8, 0.7, 0.6], [0.9, 0.5, 0.4, 0.3]], np.float32),
        np.array([[0, 1, 3, 2], [2, 0, 1, 3]]),
        {},
        np.arange(4),
    )
    report = evaluate_merged(merged, gt, 1000)
    assert report["k"] == 4
    want = reference_report(
        ["a/q", "b/q"],
        [["a/1", "x/1", "a/2", "b/1"], ["b/1", "a/1", "x/1", "a/2"]],
        merged.sims,
        ["a/1,0.1,10", "a/2,0.1,10", "b/1,0.1,10"],
        {},
        4,
    )
    assert report["map"] == pytest.approx(want["map"]) and report["oracle"] == pytest.approx(want["oracle"])
    assert report["oracle"] == pytest.approx(100.0)  # every positive was found


def test_scale_curve_plot_says_which_search_it_shows(eval_run):
    work, _, _ = eval_run
    summary = pd.read_csv(work / "results/summary.tsv", sep="\t")
    expanded_map = summary.loc[summary["model"] == "qe", "map"].item()
    curve = pd.read_csv(work / "results/qe/scale_curve.tsv", sep="\t")
    for log in (work / "results/qe/logs/plot_scale_curve.log", work / "results/logs/plot_scale_curves.log"):
        text = log.read_text()
        # the model's curve names its k when the models' k differ (the plot of all of them)
        values = ", ".join(f"{v:.2f}" for v in curve["map"])
        assert re.search(rf"curve 'qe image( \(mAP@30\))? without query expansion': mAP {values}\n", text), text
        assert re.search(
            rf"point 'qe image( \(mAP@30\))? with query expansion \(n = 2\)': mAP {expanded_map:.2f}\n", text
        ), text
    assert "curve 'm image (mAP@30)': mAP" in text  # the plot of every model: plain curves are not marked


def test_report_captions_are_text(eval_run):
    work, _, config = eval_run
    run_snakemake(work, "--report", str(work / "report.html"), config=config)
    html = (work / "report.html").read_text()
    assert "mailto:" not in html
    assert "capped at the model" in html


def test_evaluation_settings_rerun_only_evaluation(eval_run):
    work, data, config = eval_run
    for change in ({"eval_k": 20}, {"taxonomy": None}):
        new = {key: value for key, value in dict(config, **change).items() if value is not None}
        rules = {rule for rule, _ in planned_job_list(work, config=new)}
        assert rules and rules <= {
            "evaluate",
            "summarize",
            "scale_curve",
            "plot_model_scale_curve",
            "plot_all_scale_curves",
            "all",
        }, rules
        assert "evaluate" in rules


def test_ground_truth_reader_names_a_missing_file(tmp_path):
    from ilias_knn.errors import InputError

    with pytest.raises(InputError, match="positive_ids.txt: file does not exist"):
        read_ground_truth(tmp_path)


def test_bad_ground_truth_fails_before_any_search(tmp_path):
    """A malformed positive_ids.txt, an unreadable taxonomy and query instances
    the ground truth does not know are cheap to find: all named before any
    search, not after the last shard."""
    data = make_dataset(
        tmp_path / "data",
        num_instances=6,
        queries_per_instance=2,
        positives_per_instance=3,
        distractor_rows=(200,),
        dim=16,
        seed=2,
    )
    config = {
        "device": "cpu",
        "dataset_dir": data["dataset_dir"],
        "taxonomy": data["taxonomy"],
        "models": {"m": model_config(data, text_query_hdf5=data["text_query_hdf5"], total_distractors=1, k=20)},
    }
    positives = Path(data["dataset_dir"]) / "image_ids/positive_ids.txt"
    lines = positives.read_text().splitlines()
    taxonomy = Path(data["taxonomy"])
    tree = json.loads(taxonomy.read_text())

    positives.write_text("\n".join(lines[:2] + [lines[2].rsplit(",", 1)[0]] + lines[3:]) + "\n")
    taxonomy.write_text('{"category0": ["inst0000"]}')
    proc = run_snakemake(tmp_path, config=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"evaluation: {positives}: line 3 ({lines[2].rsplit(',', 1)[0]!r}) is not 'id,scale,clutter'" in out, out
    assert f"evaluation: {taxonomy}: cannot read the taxonomy" in out, out
    assert not (tmp_path / "results/m/shards").exists()

    # instances without positives (inst0001), or outside the taxonomy (inst0000): each query file named
    positives.write_text("\n".join(line for line in lines if not line.startswith("inst0001/")) + "\n")
    for subcategories in tree.values():
        for groups in subcategories.values():
            for instances in groups.values():
                instances[:] = [name for name in instances if name != "inst0000"]
    taxonomy.write_text(json.dumps(tree))
    proc = run_snakemake(tmp_path, config=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for queries in (data["query_hdf5"], data["text_query_hdf5"]):
        assert (
            f"model m: {queries}: 1 query instance(s) have no positive in {positives} (first: ['inst0001'])" in out
        ), out
    assert not (tmp_path / "results/m/shards").exists()
    positives.write_text("\n".join(lines) + "\n")
    proc = run_snakemake(tmp_path, config=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        f"model m: {data['query_hdf5']}: 1 query instance(s) are not in the taxonomy {taxonomy} (first: ['inst0000'])"
    ) in out, out
    assert not (tmp_path / "results/m/shards").exists()


def test_random_lists_with_ties_match_the_reference():
    rng = np.random.default_rng(0)
    nq, width, k = 60, 120, 100
    hits = rng.random((nq, width)) < 0.1
    scores = -np.sort(rng.integers(0, 40, size=(nq, width)), axis=1).astype(float)  # many ties
    num_pos = hits.sum(axis=1) + rng.integers(1, 10, size=nq)  # positives not all retrieved
    ap, oracle = average_precision(hits, scores, np.ones_like(hits), k, num_pos)
    for q in range(nq):
        ids = np.arange(width)
        positives = set(ids[hits[q]].tolist()) | {-(i + 1) for i in range(num_pos[q] - hits[q].sum())}
        want_ap, want_oracle = reference_ap(ids, scores[q], positives, k)
        assert ap[q] == pytest.approx(want_ap) and oracle[q] == pytest.approx(want_oracle)
