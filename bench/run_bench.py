"""Benchmark: the workflow (snakemake --cores N) against the ILIAS-style baseline
(bench/baseline_ilias.py) on generated ILIAS-shaped data, in one run.

    python bench/run_bench.py                       # default scale (see --help)
    python bench/run_bench.py --rows 400000 --shards 2

Prints wall time and peak memory of each, their ratios, the peak memory of one
shard-search job, and checks that both return the same top-k.
"""

import argparse
import csv
import json
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from ilias_knn.demo import write_feature_file  # noqa: E402


def generate(work, args):
    """Unit-norm float16 features; ids like ILIAS ('inst/...', 'yfcc100m/...')."""
    stamp = work / "data" / "params.json"
    params = {k: getattr(args, k) for k in ("queries", "positives", "shards", "rows", "dim", "seed")}
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return
    shutil.rmtree(work / "data", ignore_errors=True)
    rng = np.random.default_rng(args.seed)

    def unit(n):
        x = rng.standard_normal((n, args.dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    data = work / "data"
    write_feature_file(data / "queries.hdf5", unit(args.queries), [f"q{i // 2}/{i}" for i in range(args.queries)])
    write_feature_file(data / "positives.hdf5", unit(args.positives), [f"q{i}/p" for i in range(args.positives)])
    for s in range(args.shards):
        ids = [f"yfcc100m/{s:03d}{r:07d}" for r in range(args.rows)]
        write_feature_file(data / f"distractors_{s:05d}.hdf5", unit(args.rows), ids)
    stamp.write_text(json.dumps(params))


# Runs a command and prints the peak RSS of the largest process it waited for;
# a fresh wrapper per command, because RUSAGE_CHILDREN accumulates over children.
PEAK_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def timed(cmd):
    """Wall seconds and peak RSS (MB) of the largest single process the command ran."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, *cmd], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return wall, int(out.stdout.split()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--positives", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--rows", type=int, default=100_000, help="rows per distractor shard")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(REPO / "bench" / "work"))
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--repeat", type=int, default=1,
                        help="timed pairs (baseline and workflow, alternating which goes first); "
                             "on a noisy machine the median ratio is the figure to quote")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    generate(work, args)
    data = work / "data"
    shards = [str(data / f"distractors_{s:05d}.hdf5") for s in range(args.shards)]
    config = {"results_dir": str(work / "results"), "device": "cpu", "models": {"bench": {
        "query_hdf5": str(data / "queries.hdf5"), "positive_hdf5": str(data / "positives.hdf5"),
        "distractor_hdf5": str(data / "distractors_{idx}.hdf5"), "total_distractors": args.shards,
        "k": args.k, "save_as": "pickle"}}}
    (work / "config.yaml").write_text(json.dumps(config))

    def run_baseline():
        return timed([
            sys.executable, str(REPO / "bench" / "baseline_ilias.py"), "--query_hdf5", str(data / "queries.hdf5"),
            "--db_hdf5", str(data / "positives.hdf5"), *shards, "--k", str(args.k), "--out", str(work / "baseline.npz"),
        ])

    def run_workflow():
        shutil.rmtree(work / "results", ignore_errors=True)
        return timed([
            sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
            "--configfile", str(work / "config.yaml"), "--cores", str(args.cores), "--quiet",
        ])

    runners = {"workflow": run_workflow} if args.skip_baseline else {"baseline": run_baseline, "workflow": run_workflow}
    results = {name: [] for name in runners}
    for rep in range(args.repeat):
        for name in (list(runners) if rep % 2 == 0 else list(runners)[::-1]):
            results[name].append(runners[name]())
    job_peaks = []
    for tsv in (work / "results" / "bench" / "benchmarks").glob("search_*.tsv"):
        with open(tsv) as fh:
            job_peaks.append(float(next(csv.DictReader(fh, delimiter="\t"))["max_rss"]))

    print(f"\nscale: {args.queries} queries, {args.positives} positives + {args.shards} x {args.rows} rows, "
          f"d={args.dim}, k={args.k}, --cores {args.cores}")
    for name, runs in results.items():
        walls = ", ".join(f"{wall:.1f}" for wall, _ in runs)
        print(f"{name:9s} wall {walls} s   peak RSS {max(peak for _, peak in runs):7.0f} MB")
    print(f"one shard-search job: peak RSS {max(job_peaks):.0f} MB (max over {len(job_peaks)} jobs)")
    if "baseline" in results:
        ratios = [b / w for (b, _), (w, _) in zip(results["baseline"], results["workflow"])]
        bp = max(peak for _, peak in results["baseline"])
        wp = max(peak for _, peak in results["workflow"])
        each = ", ".join(f"{r:.2f}x" for r in ratios)
        print(f"speed-up {np.median(ratios):.2f}x (median of {len(ratios)} pairs: {each})   "
              f"peak memory workflow/baseline {wp / bp:.2f}")
        with open(work / "results" / "bench" / "similarities.pkl", "rb") as fh:
            ours = pickle.load(fh)
        base = np.load(work / "baseline.npz")
        ours_pos = positions_of(ours, data, args)
        same = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(ours_pos, base["I"])])
        max_diff = np.abs(ours["sims"] - base["D"]).max()
        print(f"top-k agreement with baseline: {same * 100:.4f}% of ids, max score difference {max_diff:.2e}")


def positions_of(result, data, args):
    """Global positions (baseline numbering) of our retrieved ids."""
    ids = result["db_ids"][result["ranks"]]
    pos = np.empty(ids.shape, np.int64)
    for qi, row in enumerate(ids):
        for j, d in enumerate(row):
            if d.startswith("yfcc100m/"):
                s, r = int(d[9:12]), int(d[12:])
                pos[qi, j] = args.positives + s * args.rows + r
            else:
                pos[qi, j] = int(d.split("/")[0][1:])
    return pos


if __name__ == "__main__":
    main()
