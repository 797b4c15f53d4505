"""What the compare_models job costs at ILIAS sizes: 20 models (19 compared
with the reference), 1,232 image and 1,000 text queries of 1,000 instances in
8 categories, 10,000 resamples per row. Synthetic per-query APs; the job's
own steps (scripts/compare_models.py): the rows with their intervals and
p-values, Holm's adjustment, the changed queries, the LaTeX table, and the
forest plot, timed one by one.

    python bench/bench_comparison.py [--models 20]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ilias_knn import comparison
from ilias_knn.evaluation import instance_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import cpu_kind  # noqa: E402

INSTANCES, CATEGORIES = 1000, 8
QUERIES = {"image": 1232, "text": 1000}


def synthetic_reports(models, rng):
    """{(model, query set): report} with per-query APs and category mAPs, and
    the taxonomy (instance -> (category, subcategory))."""
    taxonomy = {f"inst{i:04d}": (f"category{i % CATEGORIES}", f"category{i % CATEGORIES}-s") for i in range(INSTANCES)}
    reports = {}
    for query_set, count in QUERIES.items():
        ids = [f"inst{j % INSTANCES:04d}/{query_set}_{j}" for j in range(count)]
        groups = comparison.category_weights(ids, taxonomy, instance_of)
        for m in range(models):
            ap = np.clip(rng.normal(40 + m, 25, count), 0, 100)
            categories = {c: float(np.sum(ap[i] * w)) for c, (i, w) in groups.items()}
            reports[f"model{m:02d}", query_set] = {
                "map": float(ap.mean()),
                "categories": categories,
                "queries": dict(zip(ids, ap.tolist())),
            }
    return reports, taxonomy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=20)
    args = parser.parse_args()
    reports, taxonomy = synthetic_reports(args.models, np.random.default_rng(0))
    reference = "model00"
    timings = {}
    t0 = time.perf_counter()
    rows, changes = [], []
    for (model, query_set), report in reports.items():
        if model == reference:
            continue
        ref = reports[reference, query_set]
        groups = comparison.category_weights(list(ref["queries"]), taxonomy, instance_of)
        rows += comparison.compare(query_set, model, reference, report, ref, groups)
        categories = {list(ref["queries"])[i]: c for c, (indices, _) in groups.items() for i in indices}
        changes += comparison.changed_queries(query_set, model, reference, report, ref, categories)
    timings["rows (bootstrap, randomization), changed queries"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    comparison.add_holm(rows)
    tex = comparison.latex_table(rows, reference)
    timings["Holm, LaTeX"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        comparison.forest_plot(rows, Path(folder) / "comparison.png", reference)
    timings["forest plot"] = time.perf_counter() - t0
    print(f"CPU: {cpu_kind()}")
    print(f"{args.models} models, {len(rows)} rows, {comparison.RESAMPLES} resamples, {len(tex)} bytes of LaTeX")
    for step, seconds in timings.items():
        print(f"  {step}: {seconds:.2f} s")
    print(f"  total: {sum(timings.values()):.2f} s")


if __name__ == "__main__":
    main()
