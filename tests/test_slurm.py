"""The workflow on a real one-node SLURM cluster (slurmctld, slurmd, slurmdbd +
MariaDB, munge), through profiles/slurm exactly as the README says.

Opt-in: runs when ILIAS_KNN_SLURM_TESTS=1, as root, with Debian's slurm-wlm,
munge, slurmdbd and mariadb-server installed; skipped otherwise. (It rewrites
/etc/slurm and starts system daemons, so it never runs just because SLURM is
installed.)
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml

from conftest import REPO, assert_topk_matches, brute_force, model_config
from ilias_knn.demo import make_dataset

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
NEEDED = ["slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch", "sacct"]
missing = [tool for tool in NEEDED if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}")]
pytestmark = pytest.mark.skipif(
    os.environ.get("ILIAS_KNN_SLURM_TESTS") != "1" or os.geteuid() != 0 or bool(missing),
    reason="SLURM integration test is opt-in: set ILIAS_KNN_SLURM_TESTS=1 as root with "
    f"slurm-wlm, munge, slurmdbd and mariadb-server installed (missing: {missing or 'none'})",
)

# Test-only settings on top of the README's profile: check job status after 2 s
# instead of the plugin's default 40 s.
FAST_STATUS = ["--slurm-init-seconds-before-status-checks", "2"]


@pytest.fixture(scope="module")
def cluster():
    subprocess.run([str(CLUSTER), "start"], check=True, timeout=180)
    try:
        yield
    finally:
        subprocess.run([str(CLUSTER), "stop"], timeout=120)


class Background:
    """A Snakemake run in the background whose output is read as it comes (an
    unread pipe would fill up and stall it)."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def running(self):
        return self.proc.poll() is None

    def interrupt(self, kill_after=300):
        """Ctrl-C, as a user would (then SIGKILL after ``kill_after`` seconds);
        returns (exit status, output)."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.reader.join(timeout=10)
        return self.proc.returncode, "".join(self.lines)


def snakemake_slurm(workdir, *args, config, check=True, background=False):
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--profile",
        str(REPO / "profiles" / "slurm"),
        *FAST_STATUS,
        *args,
    ]
    if background:
        return Background(cmd)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def run_id(output):
    return re.search(r"SLURM run ID: (\S+)", output).group(1)


def accounting(run, with_ids=False):
    """(rule, state) of every SLURM job of one Snakemake run, from sacct; with
    ``with_ids``, (rule, state, job id): an array task's is JOBID_INDEX."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "--name", run, "-o", "JobID,State,Comment"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = []
    for line in out.splitlines():
        job_id, state, comment = line.split("|", 2)
        rule = re.match(r"rule_([A-Za-z_]+?)(_wildcards_|$)", comment)
        name = rule.group(1) if rule else comment
        # a group job is named after its group and rule: "search_search_shard"
        name = "search_shard" if name.endswith("search_shard") else name
        jobs.append((name, state.split()[0], job_id) if with_ids else (name, state.split()[0]))
    return jobs


def array_task(job_id):
    return re.fullmatch(r"\d+_\d+", job_id) is not None


def test_shard_searches_run_as_job_arrays_and_results_are_exact(cluster, tmp_path):
    """The profile submits shard searches as SLURM job arrays; with more ready
    shards than --slurm-array-limit, as several arrays of at most that many tasks."""
    data = make_dataset(tmp_path / "data", num_instances=6, distractor_rows=(400, 300, 200, 300, 250), dim=32, seed=11)
    cfg = {"device": "cpu", "models": {"m": model_config(data, total_distractors=5, k=25)}}
    out = snakemake_slurm(tmp_path, "--slurm-array-limit", "4", config=cfg)
    jobs = accounting(run_id(out), with_ids=True)
    shard_jobs = [job for job in jobs if job[0] == "search_shard"]
    assert len(shard_jobs) == 6 and all(
        state == "COMPLETED" and array_task(job_id) for _, state, job_id in shard_jobs
    ), jobs
    arrays = {job_id.split("_")[0] for _, _, job_id in shard_jobs}
    assert len(arrays) == 2, jobs  # 4 + 2 tasks
    assert sorted((rule, state) for rule, state, _ in jobs if rule != "search_shard") == [
        ("format_results", "COMPLETED"),
        ("merge_shards", "COMPLETED"),
    ], jobs
    res = json.loads((tmp_path / "results/m/similarities.json").read_text())
    assert_topk_matches(
        list(res),
        [list(v) for v in res.values()],
        [list(v.values()) for v in res.values()],
        brute_force(cfg["models"]["m"]),
    )


def test_gpu_jobs_ask_for_a_gpu_and_their_decoding_cores(cluster, tmp_path):
    """device: cuda: each shard search asks SLURM for one GPU (of the model the
    profile names) and gpu_threads cores per GPU. This cluster has no GPU, so
    sbatch refuses the request, and the plugin's message shows what was asked."""
    data = make_dataset(tmp_path / "data", num_instances=4, distractor_rows=(100, 100), dim=16, seed=14)
    cfg = {"device": "cuda", "gpu_threads": 6, "models": {"m": model_config(data, total_distractors=2, k=10)}}
    out = snakemake_slurm(
        tmp_path, "--set-resources", "search_shard:gpu_model=h100", "--retries", "0", config=cfg, check=False
    )
    calls = [line for line in out.splitlines() if line.strip().startswith("sbatch --")]
    assert calls, out
    for call in calls:
        assert " --gpus=h100:1" in call and " --cpus-per-gpu=6" in call, call
        assert "--cpus-per-task" not in call, call
    assert not (tmp_path / "results/m/shards").exists() or not list((tmp_path / "results/m/shards").glob("*.npz"))


def test_grouped_shards_share_slurm_jobs(cluster, tmp_path):
    # file 00005 is left unsearched: warned about once, not again in every job's log
    data = make_dataset(tmp_path / "data", num_instances=4, distractor_rows=(100,) * 6, dim=16, seed=12)
    cfg = {"device": "cpu", "models": {"m": model_config(data, total_distractors=5, k=10)}}
    # --cores caps what one group job asks for (its members then run in turn)
    out = snakemake_slurm(
        tmp_path,
        "--slurm-array-jobs",
        "none",
        "--groups",
        "search_shard=search",
        "--group-components",
        "search=3",
        "--cores",
        "2",
        "--slurm-keep-successful-logs",
        config=cfg,
    )
    assert out.count("so it (and any file after it) is not searched") == 1, out
    job_logs = list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(job_logs) == 4 and not any("is not searched" in log.read_text() for log in job_logs), job_logs
    jobs = accounting(run_id(out))
    # 6 shard searches packed 3 per SLURM job, plus merge and format
    assert sorted(jobs) == sorted(
        [("search_shard", "COMPLETED")] * 2 + [("merge_shards", "COMPLETED"), ("format_results", "COMPLETED")]
    ), jobs
    assert len(list((tmp_path / "results/m/shards").glob("*.npz"))) == 6


def queued_tasks():
    """Job ids of every queued SLURM job, array tasks one by one (JOBID_INDEX)."""
    return subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True).stdout.split()


def set_partition(state):
    subprocess.run(["scontrol", "update", "PartitionName=debug", f"State={state}"], check=True)


def test_cancelled_array_task_then_rerun_searches_only_the_missing_shards(cluster, tmp_path):
    data = make_dataset(tmp_path / "data", num_instances=6, distractor_rows=(300, 300, 300, 300), dim=32, seed=13)
    cfg = {"device": "cpu", "scoring": "fp32", "models": {"m": model_config(data, total_distractors=4, k=20)}}
    shards = tmp_path / "results/m/shards"
    # The partition is down while the array is queued, so one of its tasks is
    # cancelled before any runs: no race with a task that might finish first.
    set_partition("DOWN")
    run = snakemake_slurm(tmp_path, "--retries", "0", config=cfg, background=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and run.running() and len(queued_tasks()) < 5:
            time.sleep(0.5)
        tasks = queued_tasks()
        assert len(tasks) == 5 and all(array_task(task) for task in tasks), (tasks, "".join(run.lines))
        cancelled = tasks[-1]
        subprocess.run(["scancel", cancelled], check=True)
        # the partition is down: a task can only leave the queue by being cancelled
        while time.time() < deadline and cancelled in queued_tasks():
            time.sleep(0.5)
        assert cancelled not in queued_tasks() and len(queued_tasks()) == 4
    except BaseException:
        run.interrupt(kill_after=60)  # leave no run behind for the next test
        raise
    finally:
        set_partition("UP")
    deadline = time.time() + 300
    while time.time() < deadline and len(list(shards.glob("*.npz"))) < 4:
        time.sleep(0.5)
    # The SLURM plugin (2.8.0) reads sacct's state "CANCELLED by <uid>" as still
    # running and would wait forever: do what the user does, interrupt it. The
    # finished shards stay (keep-incomplete: Snakemake reports array tasks late).
    status, out = run.interrupt()
    assert status != 0, out
    done = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.npz")}
    assert len(done) == 4, out
    out = snakemake_slurm(tmp_path, config=cfg)
    jobs = accounting(run_id(out), with_ids=True)
    # only the missing shard was searched again
    searched = [job for job in jobs if job[0] == "search_shard"]
    assert len(searched) == 1 and all(state == "COMPLETED" for _, state, _ in searched), jobs
    after = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.npz")}
    assert {name: after[name] for name in done} == done
    res = json.loads((tmp_path / "results/m/similarities.json").read_text())
    assert_topk_matches(
        list(res),
        [list(v) for v in res.values()],
        [list(v.values()) for v in res.values()],
        brute_force(cfg["models"]["m"]),
    )


def test_a_full_ilias_run_of_shard_searches_is_queued_as_a_few_arrays(cluster, tmp_path):
    """10 models x (100 distractor files + positives): every one of the 1,010
    shard searches must reach the queue, in a few job arrays (the partition is
    down, so none runs). Under Snakemake's default rate of 100 jobs per second
    the plugin (2.8.0) queued 110 and waited forever."""
    from ilias_knn.demo import write_feature_file

    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 8)).astype(np.float16)
    write_feature_file(tmp_path / "q.h5", x[:2], ["q/0", "q/1"])
    write_feature_file(tmp_path / "p.h5", x[2:5], ["p/0", "p/1", "p/2"])
    for i in range(100):
        write_feature_file(tmp_path / f"d_{i:05d}.h5", x[5:], [f"d{i}/{j}" for j in range(15)])
    model = {
        "query_hdf5": str(tmp_path / "q.h5"),
        "positive_hdf5": str(tmp_path / "p.h5"),
        "distractor_hdf5": str(tmp_path / "d_{idx}.h5"),
        "total_distractors": 100,
    }
    cfg = {"device": "cpu", "models": {f"m{i}": dict(model, k=3 + i) for i in range(10)}}
    expected = 10 * 101
    set_partition("DOWN")
    run = snakemake_slurm(tmp_path, config=cfg, background=True)
    tasks, jobs = [], []
    try:
        deadline = time.time() + 240
        while time.time() < deadline and run.running() and len(tasks) < expected:
            time.sleep(1)
            tasks = queued_tasks()
        jobs = subprocess.run(["squeue", "-h", "-o", "%F"], capture_output=True, text=True).stdout.split()
    finally:
        # what is tested is the queue; Snakemake cancelling 1,010 tasks on
        # Ctrl-C may take longer than the test should wait
        _, out = run.interrupt(kill_after=60)
        subprocess.run(["scancel", "--user", "root"])
        set_partition("UP")
    assert len(tasks) == expected, (len(tasks), out[-3000:])
    # in a few sbatch calls, not 1,010 (how the ready shards fall into batches
    # varies; a batch of one shard is submitted as a plain job)
    assert len(set(jobs)) <= 20, (sorted(set(jobs)), out[-3000:])
    assert sum(map(array_task, tasks)) >= expected - 20, [task for task in tasks if not array_task(task)]
