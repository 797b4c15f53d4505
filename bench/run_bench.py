"""Benchmark: the workflow (snakemake --cores N) against the ILIAS algorithm
(bench/baseline_ilias.py, run once per query set as its users must), on data
written as ILIAS writes it, in one run.

    python bench/run_bench.py                   # 4 files of 1,000,000 x 1,024 float16 (gzip 0, automatic
                                                # chunks), 5,000 positives, 1,000 image + 1,000 text queries
    python bench/run_bench.py --ilias-queries   # ILIAS's 1,232 image + 1,000 text queries
    python bench/run_bench.py --layout small    # 8 uncompressed files of 100,000 rows
    python bench/run_bench.py --read-only       # decode one file, no scoring: chunk decoder vs h5py
    python bench/run_bench.py --scoring bf16    # the workflow with one scorer (default: auto)
    python bench/run_bench.py --repeat 3        # 3 pairs, alternating which runs first
    python bench/run_bench.py --cold            # every timed run reads the files from storage, not
                                                # the page cache (as at ILIAS scale: 200 GB a model)
    python bench/run_bench.py --profile bf16 --blocks 40   # one scorer in process on the first
                                                # blocks of one file: where a block's time goes
    python bench/run_bench.py --shards 1 --shard-on cuda --threads 8   # one file searched in process as
                                                # a GPU shard job does, against reading it (same threads)

Prints wall time and peak memory of both, the GEMM rates of this machine
measured in the same run, each shard job's GFLOP/s and where its time went,
and whether both return the same top-k for image and text queries.
"""

import argparse
import csv
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
from data import generate

from ilias_knn.block_reader import H5pyReader, block_reader
from ilias_knn.engines import make_scorer, prepare_queries, resolve_device
from ilias_knn.queries import read_model_queries
from ilias_knn.shard_search import open_shard, prepared_blocks, reads_ahead, search_shard
from ilias_knn.topk import TopK

REPO = Path(__file__).resolve().parents[1]

# Runs a command and prints the peak RSS of the largest process it waited for;
# a fresh wrapper per command, because RUSAGE_CHILDREN accumulates over children.
PEAK_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def timed(cmd, env=None):
    """Wall seconds and peak RSS (MB) of the largest single process the command ran."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, *map(str, cmd)], check=True, capture_output=True, text=True, env=env
    )
    return time.perf_counter() - t0, int(out.stdout.split()[-1]) / 1024


def evict_from_page_cache(paths):
    """Drop the files' pages from the page cache (POSIX_FADV_DONTNEED: no root
    needed), so that the next run reads them from storage, as a model's 200 GB
    of ILIAS features are read. A storage device cached by a host (a virtual
    machine's disk) may still serve them from memory."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # (written pages are dropped only once clean)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cpu_kind():
    flags = ""
    model = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = line
    except OSError:
        pass
    fast = [f for f in ("avx512_bf16", "amx_bf16", "avx512f", "avx2") if f" {f}" in flags]
    return f"{model} ({', '.join(fast) or 'no AVX2'})"


def read_only(path, repeat, cold=False):
    """GB/s of decoding one file into row-major blocks: h5py against the chunk
    decoder; with ``cold``, each pass reads the file from storage."""
    with h5py.File(path, "r") as fh:
        dataset = fh["features"]
        rows, dim = dataset.shape
        gb = rows * dim * dataset.dtype.itemsize / 1e9
        readers = {"h5py read_direct (chunk-aligned blocks)": H5pyReader(dataset)}
        for threads in (1, 2):
            reader = block_reader(path, dataset, threads=threads)
            readers[reader.name] = reader
        rates = {name: [] for name in readers}
        for _ in range(repeat):
            for name, reader in readers.items():
                if cold:
                    evict_from_page_cache([path])
                rates[name].append(gb / read_seconds(reader, dataset))
    print(
        f"\nread-only: {path.name}, {rows} x {dim} {dataset.dtype}, chunks {dataset.chunks}, "
        f"{gb:.2f} GB {'from storage (evicted before each pass)' if cold else 'from the page cache'}, "
        f"{repeat} rounds"
    )
    base = np.median(rates["h5py read_direct (chunk-aligned blocks)"])
    for name, values in rates.items():
        print(
            f"  {name:42s} {', '.join(f'{v:.2f}' for v in values)} GB/s  (median {np.median(values):.2f}, "
            f"{np.median(values) / base:.2f}x h5py)"
        )


def read_seconds(reader, dataset):
    """Seconds to read the whole dataset through ``reader`` in blocks of its
    chunk rows (as a shard job reads it)."""
    rows, dim = dataset.shape
    block_rows = dataset.chunks[0] if dataset.chunks else 8192
    block = np.empty((block_rows, dim), dataset.dtype)
    t0 = time.perf_counter()
    for start in range(0, rows, block_rows):
        stop = min(rows, start + block_rows)
        reader.read(start, stop, block[: stop - start])
    return time.perf_counter() - t0


def shard_on_device(data, device, threads, k, repeat):
    """One distractor file searched in this process as a shard job on
    ``device`` searches it (``search_shard``, ``threads`` decoding threads,
    reading ahead where a job does), with each scoring, against the chunk
    decoder reading the same file with as many threads, in the same run; on a
    GPU also against float32 on the CPU, for the top-k."""
    from threadpoolctl import threadpool_limits

    device = resolve_device(device)
    queries = prepare_queries(read_model_queries(data["queries"], data["text_queries"]).feats, None)
    path = data["distractors"][0]
    runs = []
    for rep in range(repeat):
        with h5py.File(path, "r") as fh:
            dataset = fh["features"]
            reader = block_reader(path, dataset, threads=threads)
            read = read_seconds(reader, dataset)
            reader.close()
        print(f"  round {rep + 1}: reading {path.name} ({reader.name}): {read:.2f} s", flush=True)
        for scoring in ("fp32", "bf16"):
            with threadpool_limits(limits=threads, user_api="blas"):
                scorer = make_scorer(scoring, device, queries, None, threads)
                t0 = time.perf_counter()
                result = search_shard(
                    queries, path, k, scorer, decode_threads=threads, read_ahead=reads_ahead(device, threads)
                )
                seconds = time.perf_counter() - t0
            runs.append((f"round {rep + 1}: {scoring} on {device}", result))
            phases = ", ".join(f"{name} {value:.2f}" for name, value in result.stats["phases"].items())
            print(
                f"  round {rep + 1}: {scoring} on {device}: {seconds:.2f} s = {seconds / read:.2f}x the read "
                f"({result.stats['engine']}; seconds per phase: {phases})",
                flush=True,
            )
    reference = ("round 1's fp32", runs[0][1])
    if device != "cpu":
        with threadpool_limits(limits=os.cpu_count(), user_api="blas"):
            reference = ("fp32 on the CPU", search_shard(queries, path, k, make_scorer("fp32", "cpu", queries)))
    for name, result in runs:
        differing, diff = shard_topk_difference(result, reference[1])
        print(
            f"  {name} against {reference[0]}: {differing} of {result.rows.size} top-k rows "
            f"differ (near-ties at the k-th place), max score difference {diff:.2e}"
        )


def shard_topk_difference(result, reference):
    """(top-k rows of ``result`` missing from ``reference``'s, max difference of the scores by rank)."""
    differing = sum(len(set(a) - set(b)) for a, b in zip(result.rows.tolist(), reference.rows.tolist()))
    return differing, float(np.abs(result.scores - reference.scores).max())


def gemm_rates(num_queries, dim, block_rows, processes):
    """This machine's GEMM rates at a shard job's shape, ``processes`` one-thread processes side by side."""
    out = subprocess.run(
        [
            sys.executable,
            REPO / "bench" / "gemm_rates.py",
            "--queries",
            str(num_queries),
            "--dim",
            str(dim),
            "--rows",
            str(block_rows),
            "--processes",
            str(processes),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=one_thread_env(),
    ).stdout
    return json.loads(out)


def scoring_probe(threads=1):
    """What scoring: auto takes on this machine, measuring its GEMM rates now
    unless they are cached (as a shard job does on a new kind of machine)."""
    code = f"from ilias_knn.engines import choose_scoring; print(' '.join(choose_scoring('auto', 'cpu', {threads})))"
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=one_thread_env()
    ).stdout.strip()


def one_thread_env():
    return dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


def profile(data, scoring, blocks, k):
    """One scorer, in this process, on the first ``blocks`` blocks of a
    distractor file (one thread for scoring, one for reading): per phase.
    The bf16 scorer filters every block it can (on a CPU whose bf16 GEMM is
    slow it would score densely): its costs outside the GEMM are measured."""
    from threadpoolctl import threadpool_limits

    queries_set = read_model_queries(data["queries"], data["text_queries"])
    queries = prepare_queries(queries_set.feats, None)
    with threadpool_limits(limits=1, user_api="blas"):
        if scoring == "bf16":  # the filter path on every block it can take, whatever this CPU's bf16 rate
            import torch

            from ilias_knn.bf16 import Bf16Scorer

            torch.set_num_threads(1)  # one scoring thread, as in a one-thread shard job
            scorer = Bf16Scorer(queries, measure_costs=False)
        else:
            scorer = make_scorer(scoring, "cpu", queries, None, threads=1)
        path = data["distractors"][0]
        with open_shard(path, queries.shape[1]) as shard:
            block_rows = shard.info.chunk_rows or 7813
            topk = TopK(queries.shape[0], k)
            per_block = []
            t_start = time.perf_counter()
            for i, (start, prepared, positions) in enumerate(prepared_blocks(shard, scorer, block_rows)):
                before = dict(scorer.times.seconds)
                t0 = time.perf_counter()
                scorer.score(prepared, positions, topk)
                per_block.append(
                    (
                        time.perf_counter() - t0,
                        {n: scorer.times.seconds[n] - before.get(n, 0.0) for n in scorer.times.seconds},
                    )
                )
                if i + 1 == blocks:
                    break
            wall = time.perf_counter() - t_start
    print(
        f"\nprofile: {scorer.describe()}, {queries.shape[0]} queries, {len(per_block)} blocks of {block_rows} "
        f"rows of {path.name}, {wall:.1f} s"
    )
    print("  per phase (s): " + scorer.times.summary())
    late = per_block[len(per_block) // 2 :]  # steady state: the second half
    n = len(late)
    per_phase = {}  # ms per block; reading-thread phases are those done while the late blocks were scored
    for _, phases in late:
        for name, value in phases.items():
            per_phase[name] = per_phase.get(name, 0.0) + value * 1e3 / n
    gemm = sum(per_phase.get(name, 0.0) for name in ("gemm", "gemm bf16", "gemm fp32"))
    total = sum(t for t, _ in late) * 1e3 / n
    # the engine's work outside its GEMM: in the scoring thread (filter,
    # rescore, select) and in the reading thread ("prepare": conversion, and
    # for bf16 its copy, which is also shown alone as "bf16 copy")
    scoring_side = total - gemm
    reading_side = per_phase.get("prepare", 0.0)
    print(
        f"  steady state (last {n} blocks), ms per block: "
        + ", ".join(f"{name} {value:.1f}" for name, value in sorted(per_phase.items()))
    )
    print(
        f"  scoring thread {total:.1f} ms per block: GEMM {gemm:.1f}, outside it {scoring_side:.1f}; "
        f"reading thread, besides reading: prepare {reading_side:.1f}"
    )
    outside = scoring_side + reading_side
    print(
        f"  outside the GEMM in all: {outside:.1f} ms per block = {outside / (outside + gemm) * 100:.1f} % "
        f"of this engine's CPU time per block here"
    )
    if scoring == "bf16":
        flops = 2.0 * queries.shape[0] * block_rows * queries.shape[1]
        for rate in (208.0, 400.0):
            gemm_ms = flops / rate / 1e6
            print(
                f"  at a bf16 GEMM of {rate:.0f} GFLOP/s per core ({gemm_ms:.0f} ms per block) the same work "
                f"outside it would be {outside / (outside + gemm_ms) * 100:.1f} % of a block's CPU time "
                f"({scoring_side / (scoring_side + gemm_ms) * 100:.1f} % counting the scoring thread only)"
            )


def job_report(results, num_queries, dim, gemm, side):
    """Per shard job: wall, GFLOP/s against this machine's GEMM (alone, and
    side by side as the jobs run), phases."""
    rows = []
    for partial in sorted((results / "bench" / "shards").glob("*.npz")):
        with np.load(partial) as data:
            meta = json.loads(str(data["meta"]))
        stats = meta["stats"]
        flops = 2.0 * num_queries * meta["rows_kept"] * dim
        phases = stats.get("phases", {})
        scoring = sum(v for k, v in phases.items() if k not in ("read", "prepare", "selection", "open", "ids"))
        rows.append(
            (
                partial.stem,
                meta["rows_kept"],
                stats["seconds"],
                flops / max(scoring, 1e-9) / 1e9,
                phases,
                stats["engine"],
            )
        )
    print("\nshard jobs (two side by side on --cores 2): seconds in the search, GFLOP/s of its scoring thread")
    for name, kept, seconds, rate, phases, engine in rows:
        split = ", ".join(f"{k} {v:.1f}" for k, v in sorted(phases.items()))
        print(
            f"  {name:18s} {kept:9d} rows {seconds:7.1f} s  {rate:6.1f} GFLOP/s = {rate / gemm['fp32']:.2f} of the "
            f"fp32 GEMM alone, {rate / side['fp32']:.2f} side by side  [{split}]  {engine}"
        )


def arithmetic_floor(num_queries, rows, dim, side, cores):
    """Seconds of GEMM alone per precision: every database row scored once for
    every query, by ``cores`` one-thread processes at the side-by-side rate."""
    flops = 2.0 * num_queries * rows * dim
    return {name: flops / (cores * rate * 1e9) for name, rate in side.items()}


def positions_of(result, params):
    """Global positions (the baseline's numbering) of our retrieved ids."""
    ids = result["db_ids"][result["ranks"]]
    pos = np.empty(ids.shape, np.int64)
    for qi, row in enumerate(ids):
        for j, d in enumerate(row):
            if d.startswith("yfcc100m/"):
                pos[qi, j] = params["positives"] + int(d[9:12]) * params["rows"] + int(d[12:])
            else:
                pos[qi, j] = int(d.rsplit("/p", 1)[1].split(".")[0])
    return pos


def agreement(ours_path, base_path, params):
    with open(ours_path, "rb") as fh:
        ours = pickle.load(fh)
    base = np.load(base_path)
    pos = positions_of(ours, params)
    same = np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(pos, base["I"])])
    differing = int(sum(len(set(b) - set(a)) for a, b in zip(pos, base["I"])))
    return same, differing, float(np.abs(ours["sims"] - base["D"]).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", choices=["ilias", "small"], default="ilias")
    parser.add_argument("--image-queries", type=int, default=1000)
    parser.add_argument("--text-queries", type=int, default=1000)
    parser.add_argument("--ilias-queries", action="store_true", help="1,232 image + 1,000 text queries")
    parser.add_argument("--positives", type=int, default=5000)
    parser.add_argument("--shards", type=int)
    parser.add_argument("--rows", type=int, help="rows per distractor file")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--scoring", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(REPO / "bench" / "work"))
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--read-only", action="store_true", help="only decode one distractor file")
    parser.add_argument("--profile", choices=["fp32", "bf16"], help="only profile one scorer in process")
    parser.add_argument("--blocks", type=int, default=40, help="blocks to profile")
    parser.add_argument(
        "--shard-on",
        metavar="DEVICE",
        choices=["cpu", "cuda"],
        help="only search one distractor file in process, as a shard job on DEVICE does, against reading it",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=8,
        help="with --shard-on: the job's threads (gpu_threads, or search_threads on the CPU)",
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--cold", action="store_true", help="drop the data files from the page cache before every timed run"
    )
    parser.add_argument(
        "--compare",
        metavar="CHECKOUT",
        help="also time the workflow of another checkout (e.g. a git worktree of an older "
        "commit), in the same run, with its own library",
    )
    args = parser.parse_args()
    if args.ilias_queries:
        args.image_queries, args.text_queries = 1232, 1000
    small = args.layout == "small"
    params = {
        "layout": args.layout,
        "image_queries": args.image_queries,
        "text_queries": args.text_queries,
        "positives": args.positives,
        "shards": args.shards or (8 if small else 4),
        "rows": args.rows or (100_000 if small else 1_000_000),
        "dim": args.dim,
        "seed": args.seed,
    }
    work = Path(args.work)
    print(f"machine: {cpu_kind()}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores")
    t0 = time.perf_counter()
    data = generate(work / f"data_{args.layout}", params)
    print(f"data: {params} ({time.perf_counter() - t0:.0f} s to generate or check)")
    if args.read_only:
        read_only(data["distractors"][0], max(3, args.repeat), args.cold)
        return
    if args.profile:
        profile(data, args.profile, args.blocks, args.k)
        return
    if args.shard_on:
        shard_on_device(data, args.shard_on, args.threads, args.k, args.repeat)
        return
    num_queries = args.image_queries + args.text_queries
    block_rows = 7813 if not small else 4096
    gemm = gemm_rates(num_queries, args.dim, block_rows, 1)
    side = gemm_rates(num_queries, args.dim, block_rows, args.cores)
    print(
        f"GEMM rates of a {num_queries} x {args.dim} x {block_rows} block, same run: one thread alone: numpy fp32 "
        f"{gemm['fp32']:.1f} GFLOP/s, torch bf16 {gemm['bf16']:.1f}; {args.cores} one-thread processes side by "
        f"side: fp32 {side['fp32']:.1f}, bf16 {side['bf16']:.1f} per process"
    )
    if args.scoring == "auto":
        print(
            f"scoring auto: {scoring_probe()} (the probe runs once per kind of machine; "
            "it is not part of the timed runs)"
        )

    model = {
        "query_hdf5": str(data["queries"]),
        "text_query_hdf5": str(data["text_queries"]),
        "positive_hdf5": str(data["positives"]),
        "distractor_hdf5": str(data["distractor_template"]),
        "total_distractors": params["shards"],
        "k": args.k,
        "save_as": "pickle",
    }
    config = {
        "results_dir": str(work / "results"),
        "device": "cpu",
        "scoring": args.scoring,
        "models": {"bench": model},
    }
    (work / "config.yaml").write_text(json.dumps(config))
    db = [data["positives"], *data["distractors"]]
    data_files = [data["queries"], data["text_queries"], *db]
    before_each_run = (lambda: evict_from_page_cache(data_files)) if args.cold else (lambda: None)

    def run_baseline():
        walls, peaks = [], []
        for name, queries in (("image", data["queries"]), ("text", data["text_queries"])):
            before_each_run()
            wall, peak = timed(
                [
                    sys.executable,
                    REPO / "bench" / "baseline_ilias.py",
                    "--query_hdf5",
                    queries,
                    "--db_hdf5",
                    *db,
                    "--k",
                    args.k,
                    "--out",
                    work / f"baseline_{name}.npz",
                ]
            )
            walls.append(wall)
            peaks.append(peak)
        return sum(walls), max(peaks), walls

    def workflow_runner(checkout, results_dir):
        run_config = work / f"config_{results_dir}.yaml"
        run_config.write_text(json.dumps(dict(config, results_dir=str(work / results_dir))))
        env = dict(os.environ)
        if checkout != REPO:  # its own library first, not this checkout's installed one
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout / "scripts"), env.get("PYTHONPATH")]))

        def run_workflow():
            shutil.rmtree(work / results_dir, ignore_errors=True)
            shutil.rmtree(work / ".snakemake", ignore_errors=True)
            before_each_run()
            wall, peak = timed(
                [
                    sys.executable,
                    "-m",
                    "snakemake",
                    "-s",
                    checkout / "Snakefile",
                    "--directory",
                    work,
                    "--configfile",
                    run_config,
                    "--cores",
                    args.cores,
                    "--quiet",
                ],
                env=env,
            )
            return wall, peak, [wall]

        return run_workflow

    runners = {} if args.skip_baseline else {"baseline": run_baseline}
    runners["workflow"] = workflow_runner(REPO, "results")
    if args.compare:
        runners["compared"] = workflow_runner(Path(args.compare).resolve(), "results_compared")
    results = {name: [] for name in runners}
    for rep in range(args.repeat):
        for name in list(runners) if rep % 2 == 0 else list(runners)[::-1]:
            results[name].append(runners[name]())
            print(f"  {name}: {results[name][-1][0]:.1f} s", flush=True)
    job_peaks = []
    for tsv in (work / "results" / "bench" / "benchmarks").glob("search_*.tsv"):
        with open(tsv) as fh:
            job_peaks.append(float(next(csv.DictReader(fh, delimiter="\t"))["max_rss"]))

    print(
        f"\nscale: {args.image_queries} image + {args.text_queries} text queries, {args.positives} positives "
        f"+ {params['shards']} x {params['rows']} rows ({args.layout}), d={args.dim}, k={args.k}, "
        f"--cores {args.cores}, scoring {args.scoring}, "
        f"{'files read from storage (evicted before each run)' if args.cold else 'files in the page cache'}"
    )
    for name, runs in results.items():
        walls = ", ".join(
            f"{wall:.1f}" + (f" ({' + '.join(f'{w:.1f}' for w in parts)})" if len(parts) > 1 else "")
            for wall, _, parts in runs
        )
        print(f"{name:9s} wall {walls} s   peak RSS {max(peak for _, peak, _ in runs):7.0f} MB")
    print(f"one shard-search job: peak RSS {max(job_peaks):.0f} MB (max over {len(job_peaks)} jobs)")
    job_report(work / "results", num_queries, args.dim, gemm, side)
    if "compared" in results:
        ratios = [c[0] / w[0] for c, w in zip(results["compared"], results["workflow"])]
        print(
            f"\n{args.compare} / this checkout, wall time: {np.median(ratios):.3f} "
            f"(median of {len(ratios)}: {', '.join(f'{r:.3f}' for r in ratios)})"
        )
    if "baseline" in results:
        ratios = [b[0] / w[0] for b, w in zip(results["baseline"], results["workflow"])]
        base_peak = max(peak for _, peak, _ in results["baseline"])
        each = ", ".join(f"{r:.2f}x" for r in ratios)
        print(
            f"\nspeed-up {np.median(ratios):.2f}x (median of {len(ratios)}: {each}); shard-job peak / baseline "
            f"peak {max(job_peaks) / base_peak:.3f}"
        )
        baseline_wall = float(np.median([b[0] for b in results["baseline"]]))
        workflow_wall = float(np.median([w[0] for w in results["workflow"]]))
        floor = arithmetic_floor(
            num_queries, params["positives"] + params["shards"] * params["rows"], args.dim, side, args.cores
        )
        print(
            "GEMM floor (the scores alone, at this run's side-by-side rate): "
            + "; ".join(
                f"{name} {seconds:.1f} s: the workflow takes {workflow_wall / seconds:.2f}x it, a method at this "
                f"floor would be {baseline_wall / seconds:.2f}x the baseline"
                for name, seconds in floor.items()
            )
        )
        for name, suffix in (("image", ""), ("text", "_text")):
            same, differing, diff = agreement(
                work / "results" / "bench" / f"similarities{suffix}.pkl", work / f"baseline_{name}.npz", params
            )
            print(
                f"top-k agreement, {name} queries: {same * 100:.4f}% of ids ({differing} differ), "
                f"max score difference {diff:.2e}"
            )
            if "compared" in results:
                same, differing, diff = agreement(
                    work / "results_compared" / "bench" / f"similarities{suffix}.pkl",
                    work / f"baseline_{name}.npz",
                    params,
                )
                print(
                    f"  compared checkout, {name} queries: {same * 100:.4f}% of ids ({differing} differ), "
                    f"max score difference {diff:.2e}"
                )


if __name__ == "__main__":
    main()
