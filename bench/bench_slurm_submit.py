"""How long Snakemake takes to hand a full ILIAS run to SLURM: 10 models x 100
distractor files (1,010 shard searches), submitted through profiles/slurm as
job arrays (the profile's default) and one sbatch per job, on the real
one-node test cluster (tests/slurm/cluster.sh; needs root and Debian's SLURM
packages). The partition is set DOWN first, so every job stays pending:
what is timed is planning plus submission, from Snakemake's start to the
last shard search in the queue; then everything is cancelled.

    sudo .venv/bin/python bench/bench_slurm_submit.py [--models 10] [--files 100]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ilias_knn.demo import write_feature_file

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"


def queued():
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True).stdout
    return len(out.split())


def submit(work, config, extra, expected, timeout):
    """Seconds until ``expected`` jobs are queued (or ``timeout`` passed), how
    many were queued, and in how many SLURM jobs (sbatch calls)."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(config),
        "--profile",
        str(REPO / "profiles" / "slurm"),
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while queued() < expected and time.perf_counter() - t0 < timeout and proc.poll() is None:
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    tasks = queued()
    ids = subprocess.run(["squeue", "-h", "-o", "%F"], capture_output=True, text=True).stdout.split()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:  # stuck with jobs it never submitted
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    subprocess.run(["scancel", "--user", "root"], check=False)
    while queued():
        time.sleep(0.5)
    return wall, tasks, len(set(ids))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for every job to be queued")
    parser.add_argument("--work", default=str(REPO / "bench" / "work_slurm"))
    args = parser.parse_args()
    work = Path(args.work)
    data = work / "data"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 16)).astype(np.float16)
    write_feature_file(data / "q.hdf5", x[:4], [f"q/{i}" for i in range(4)])
    write_feature_file(data / "p.hdf5", x[4:10], [f"p/{i}" for i in range(6)])
    for i in range(args.files):
        write_feature_file(data / f"d_{i:05d}.hdf5", x[10:], [f"d{i}/{j}" for j in range(10)])
    models = {
        f"model{m}": {
            "query_hdf5": str(data / "q.hdf5"),
            "positive_hdf5": str(data / "p.hdf5"),
            "distractor_hdf5": str(data / "d_{idx}.hdf5"),
            "total_distractors": args.files,
            "k": 5,
        }
        for m in range(args.models)
    }
    config = work / "config.yaml"
    config.write_text(json.dumps({"device": "cpu", "models": models}))
    expected = args.models * (args.files + 1)
    subprocess.run([str(CLUSTER), "start"], check=True)
    try:
        subprocess.run(["scontrol", "update", "PartitionName=debug", "State=DOWN"], check=True)
        for label, extra in (
            ("job arrays (profile default)", []),
            ("one sbatch per job (--slurm-array-jobs none)", ["--slurm-array-jobs", "none"]),
        ):
            subprocess.run(["rm", "-rf", str(work / ".snakemake"), str(work / "results")], check=True)
            wall, tasks, sbatch_jobs = submit(work, config, extra, expected, args.timeout)
            print(
                f"{label:46s} {tasks} of {expected} shard searches queued in {wall:6.1f} s, "
                f"as {sbatch_jobs} SLURM job(s)",
                flush=True,
            )
    finally:
        subprocess.run([str(CLUSTER), "stop"])


if __name__ == "__main__":
    main()
