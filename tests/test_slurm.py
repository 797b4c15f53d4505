"""The workflow on a real one-node SLURM cluster (slurmctld, slurmd, slurmdbd +
MariaDB, munge), through profiles/slurm exactly as the README says.

Opt-in: runs when ILIAS_KNN_SLURM_TESTS=1, as root, with Debian's slurm-wlm,
munge, slurmdbd and mariadb-server installed; skipped otherwise. (It rewrites
/etc/slurm and starts system daemons, so it never runs just because SLURM is
installed.)
"""

import os
import re
import shutil
import signal
import subprocess
import threading
import sys
import time

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


def snakemake_slurm(workdir, *args, config, check=True, popen=False):
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--profile", str(REPO / "profiles" / "slurm"),
           *FAST_STATUS, *args]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def run_id(output):
    return re.search(r"SLURM run ID: (\S+)", output).group(1)


def accounting(run):
    """(rule, state) of every SLURM job of one Snakemake run, from sacct."""
    out = subprocess.run(["sacct", "-n", "-X", "-P", "--name", run, "-o", "JobID,State,Comment"],
                         capture_output=True, text=True, check=True).stdout
    jobs = []
    for line in out.splitlines():
        job_id, state, comment = line.split("|", 2)
        rule = re.match(r"rule_([A-Za-z_]+?)(_wildcards_|$)", comment)
        name = rule.group(1) if rule else comment
        # a group job is named after its group and rule: "search_search_shard"
        name = "search_shard" if name.endswith("search_shard") else name
        jobs.append((name, state.split()[0]))
    return jobs


def final_state(job_id, timeout=60):
    """sacct's state of a job once it has ended ("" if it did not end in time)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
                             capture_output=True, text=True).stdout.strip()
        if out and not out.startswith(("PENDING", "RUNNING", "COMPLETING", "CONFIGURING")):
            return out
        time.sleep(0.5)
    return ""


def test_every_job_runs_on_slurm_and_results_are_exact(cluster, tmp_path):
    data = make_dataset(tmp_path / "data", num_instances=6, distractor_rows=(400, 300, 200), dim=32, seed=11)
    cfg = {"device": "cpu", "models": {"m": model_config(data, total_distractors=3, k=25)}}
    out = snakemake_slurm(tmp_path, config=cfg)
    jobs = accounting(run_id(out))
    assert sorted(jobs) == sorted([("format_results", "COMPLETED"), ("merge_shards", "COMPLETED")]
                                  + [("search_shard", "COMPLETED")] * 4), jobs
    import json
    res = json.loads((tmp_path / "results/m/similarities.json").read_text())
    assert_topk_matches(list(res), [list(v) for v in res.values()], [list(v.values()) for v in res.values()],
                        brute_force(cfg["models"]["m"]))


def test_grouped_shards_share_slurm_jobs(cluster, tmp_path):
    data = make_dataset(tmp_path / "data", num_instances=4, distractor_rows=(100,) * 5, dim=16, seed=12)
    cfg = {"device": "cpu", "models": {"m": model_config(data, total_distractors=5, k=10)}}
    # --cores caps what one group job asks for (its members then run in turn)
    out = snakemake_slurm(tmp_path, "--groups", "search_shard=search", "--group-components", "search=3", "--cores", "2",
                          config=cfg)
    jobs = accounting(run_id(out))
    # 6 shard searches packed 3 per SLURM job, plus merge and format
    assert sorted(jobs) == sorted([("search_shard", "COMPLETED")] * 2
                                  + [("merge_shards", "COMPLETED"), ("format_results", "COMPLETED")]), jobs
    assert len(list((tmp_path / "results/m/shards").glob("*.npz"))) == 6


def test_scancel_then_rerun_completes_without_redoing_finished_shards(cluster, tmp_path):
    data = make_dataset(tmp_path / "data", num_instances=20, queries_per_instance=5,
                        distractor_rows=(60000,) * 4, dim=128, seed=13)
    cfg = {"device": "cpu", "scoring": "fp32", "models": {"m": model_config(data, total_distractors=4, k=50)}}
    proc = snakemake_slurm(tmp_path, "--retries", "0", config=cfg, popen=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    shards = tmp_path / "results/m/shards"
    cancelled = None
    deadline = time.time() + 300
    while time.time() < deadline and cancelled is None:
        # once Snakemake has seen one shard job finish, cancel a running one
        finished = any("Finished jobid" in line for line in list(lines))
        running = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i %k"], capture_output=True,
                                 text=True).stdout.split("\n")
        running = [line.split()[0] for line in running if "search_shard" in line]
        if finished and running:
            subprocess.run(["scancel", running[0]], check=True)
            # a short job can finish between squeue and scancel: then cancel another
            if final_state(running[0]).startswith("CANCELLED"):
                cancelled = running[0]
        time.sleep(0.5)
    assert cancelled, "no running shard job seen to cancel"
    # The SLURM plugin (2.8.0) reads sacct's state "CANCELLED by <uid>" as still
    # running and would wait forever: do what the user does, interrupt it.
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=300)
    reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode != 0, out
    done = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.npz")}
    assert 1 <= len(done) < 5
    out = snakemake_slurm(tmp_path, config=cfg)
    jobs = accounting(run_id(out))
    # only the missing shards were searched again
    assert jobs.count(("search_shard", "COMPLETED")) == 5 - len(done), jobs
    after = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.npz")}
    assert {name: after[name] for name in done} == done
    import json
    res = json.loads((tmp_path / "results/m/similarities.json").read_text())
    assert_topk_matches(list(res), [list(v) for v in res.values()], [list(v.values()) for v in res.values()],
                        brute_force(cfg["models"]["m"]))
