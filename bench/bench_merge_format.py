"""Benchmark of the steps after the searches, at ILIAS scale, and of planning:

- merge: 100 partials of 2,232 queries x top-1,000 (peak memory too);
- format: the merged top-1,000 of 2,232 queries as ILIAS JSON and pickle;
- planning: `snakemake -n` for 10 models x 100 shards (1,000+ jobs).

    python bench/bench_merge_format.py [--partials 100] [--queries 2232] [--k 1000]

Partials are synthetic (random sorted scores, random rows of 1M-row shards);
the timed code is the workflow's own (merge_partials, write_json, write_pickle).
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ilias_knn.arrays import sorted_unique
from ilias_knn.formats import write_json, write_pickle
from ilias_knn.merge import merge_partials
from ilias_knn.merged_result import load_merged, save_merged
from ilias_knn.partials import save_partial
from ilias_knn.shard_search import ShardResult

REPO = Path(__file__).resolve().parents[1]


def fixed_width_ids(prefix, numbers, digits=7):
    """prefix + zero-padded numbers as an S array, by arithmetic (np.char is slow)."""
    powers = 10 ** np.arange(digits - 1, -1, -1)
    chars = ((numbers[:, None] // powers) % 10 + ord("0")).astype(np.uint8)
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    table = np.concatenate([np.broadcast_to(head, (len(numbers), len(head))), chars], axis=1)
    return np.ascontiguousarray(table).view(f"S{table.shape[1]}").ravel()


def make_partials(work, args):
    rng = np.random.default_rng(0)
    query_ids = np.array([f"inst{i // 2:04d}/query_{i}.jpg" for i in range(args.queries)])
    paths = []
    for p in range(args.partials):
        scores = -np.sort(-rng.random((args.queries, args.k), dtype=np.float32), axis=1)
        rows = rng.integers(0, args.shard_rows, size=(args.queries, args.k))
        id_rows = sorted_unique(rows)
        ids = fixed_width_ids(f"yfcc100m/{p:03d}", id_rows)
        path = work / f"partial_{p:05d}.npz"
        save_partial(
            path, ShardResult(scores, rows, id_rows, ids, args.shard_rows, args.shard_rows), query_ids, {"k": args.k}
        )
        paths.append(str(path))
    return paths


def timed(label, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:42s} {time.perf_counter() - t0:7.2f} s")
    return out


def planning(work, models, shards):
    """Dry run of `models` x `shards` (paths that exist as empty files: no HDF5 is opened)."""
    data = work / "plan"
    data.mkdir(exist_ok=True)
    for name in ["q.hdf5", "p.hdf5"] + [f"d_{i:05d}.hdf5" for i in range(shards)]:
        (data / name).touch()
    cfg = {
        "results_dir": "results",
        "device": "cpu",
        "models": {
            f"model{m}": {
                "query_hdf5": str(data / "q.hdf5"),
                "positive_hdf5": str(data / "p.hdf5"),
                "distractor_hdf5": str(data / "d_{idx}.hdf5"),
                "total_distractors": shards,
            }
            for m in range(models)
        },
    }
    (work / "plan.yaml").write_text(json.dumps(cfg))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(work / "plan.yaml"),
        "-n",
        "--quiet",
        "rules",
        "--cores",
        "2",
    ]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    jobs = next((line.split()[1] for line in out.stdout.splitlines() if line.startswith("total")), "?")
    print(f"{f'snakemake -n, {models} models x {shards} shards':42s} {wall:7.2f} s   ({jobs} jobs)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partials", type=int, default=100)
    parser.add_argument("--queries", type=int, default=2232)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--shard-rows", type=int, default=1_000_000)
    parser.add_argument("--work", default=str(REPO / "bench" / "work_merge"))
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    paths = timed(f"write {args.partials} synthetic partials", lambda: make_partials(work, args))
    subprocess.run(["sync"])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    merged = timed(f"merge {args.partials} partials ({args.queries} x {args.k})", lambda: merge_partials(paths, args.k))
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS before / after the merge: {rss0:.0f} / {rss1:.0f} MB")
    save_merged(work / "merged.npz", merged)
    merged = timed("load merged.npz", lambda: load_merged(work / "merged.npz"))
    timed("format JSON (orjson)", lambda: write_json(work / "similarities.json", merged))
    timed("format pickle", lambda: write_pickle(work / "similarities.pkl", merged))
    print(
        f"  JSON {(work / 'similarities.json').stat().st_size / 2**20:.0f} MB, "
        f"pickle {(work / 'similarities.pkl').stat().st_size / 2**20:.0f} MB"
    )
    planning(work, models=10, shards=100)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
