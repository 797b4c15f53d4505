"""Shared test helpers: an independent float64 brute force, and Snakemake runs."""

import errno
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from ilias_knn import features
from ilias_knn.adapter import load_adapter
from ilias_knn.demo import make_dataset
from ilias_knn.engines import prepare_queries
from ilias_knn.merge import merge_partials
from ilias_knn.partials import save_partial
from ilias_knn.selection import load_selected_ids
from ilias_knn.shard_search import search_shard

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------
# Independent reference: float64 numpy, whole files in memory.
# ----------------------------------------------------------------------------
def read_h5(path):
    with h5py.File(path, "r") as fh:
        feats = fh["features"][...].astype(np.float64)
        ids = np.array([x.decode() if isinstance(x, bytes) else x for x in fh["index"][...]])
    return feats, ids


def adapt64(x, adapter_path):
    if not adapter_path:
        return x
    state = torch.load(adapter_path, weights_only=True)
    w = state["layer.weight"].double().numpy()
    b = state["layer.bias"].double().numpy()
    y = x @ w.T + b
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def reference_database(model_cfg):
    """(adapted float64 database, ids) in database order: positives, then shards."""
    db, ids = read_h5(model_cfg["positive_hdf5"])
    parts, id_parts = [db], [ids]
    selected = None
    if model_cfg.get("selected_ids"):
        selected = {line.strip() for line in open(model_cfg["selected_ids"]) if line.strip()}
    template = model_cfg.get("distractor_hdf5")
    for i in range(model_cfg.get("total_distractors", 1) if template else 0):
        feats, dids = read_h5(template.replace("{idx}", f"{i:05d}"))
        if selected is not None:
            keep = np.array([d in selected or d.split("/", 1)[-1] in selected and "/" in d for d in dids], bool)
            feats, dids = feats[keep], dids[keep]
        parts.append(feats)
        id_parts.append(dids)
    return adapt64(np.concatenate(parts), model_cfg.get("lin_adapt_path")), np.concatenate(id_parts)


def topk_reference(q, qids, db, ids, k):
    """(query_ids, db_ids, full score matrix, top-k ids, top-k scores), float64."""
    scores = q @ db.T
    kk = min(k, db.shape[0])
    # descending score, ties by database position
    order = np.lexsort((np.broadcast_to(np.arange(db.shape[0]), scores.shape), -scores), axis=1)[:, :kk]
    return qids, ids, scores, ids[order], np.take_along_axis(scores, order, 1)


# ----------------------------------------------------------------------------
# The library's own path, as the workflow's jobs take it.
# ----------------------------------------------------------------------------
def run_library(cfg, tmp_path, make=None, block_rows=64, read_ahead=True, decode_threads=1):
    """Every shard of a model searched (``make(queries, adapter)`` gives each
    its scorer; numpy float32 when None), its partial saved, all merged."""
    adapter = load_adapter(cfg["lin_adapt_path"]) if cfg.get("lin_adapt_path") else None
    _, qf, qids = features.read_all(cfg["query_hdf5"])
    queries = prepare_queries(qf, adapter)
    selected = load_selected_ids(cfg["selected_ids"]) if cfg.get("selected_ids") else None
    shards = [(cfg["positive_hdf5"], None)] + [
        (cfg["distractor_hdf5"].replace("{idx}", f"{i:05d}"), selected) for i in range(cfg["total_distractors"])
    ]
    paths = []
    for n, (shard, sel) in enumerate(shards):
        result = search_shard(
            queries,
            shard,
            cfg["k"],
            make and make(queries, adapter),
            adapter=adapter,
            selected_ids=sel,
            block_rows=block_rows,
            decode_threads=decode_threads,
            read_ahead=read_ahead,
        )
        out = tmp_path / f"part{n}.npz"
        save_partial(out, result, qids, {"k": cfg["k"], "shard": shard})
        paths.append(str(out))
    return merge_partials(paths, cfg["k"], {p: {"k": cfg["k"]} for p in paths})


def retrieved_ids(merged):
    return merged.db_ids.astype(str)[merged.ranks]


def brute_force(model_cfg, k=None, queries_path=None):
    """Reference: (query_ids, db_ids, full score matrix, top-k ids, top-k scores)."""
    k = k or model_cfg.get("k", 1000)
    q, qids = read_h5(queries_path or model_cfg["query_hdf5"])
    db, ids = reference_database(model_cfg)
    return topk_reference(adapt64(q, model_cfg.get("lin_adapt_path")), qids, db, ids, k)


def brute_force_expanded(model_cfg, n, queries_path=None):
    """Reference with query expansion, written independently of the library:
    q' = normalize(q + sum_i s_i x_i) over the float64 top-n, then search again."""
    q, qids = read_h5(queries_path or model_cfg["query_hdf5"])
    q = adapt64(q, model_cfg.get("lin_adapt_path"))
    db, ids = reference_database(model_cfg)
    scores = q @ db.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    weights = np.take_along_axis(scores, top, 1)
    expanded = q + np.einsum("qn,qnd->qd", weights, db[top])
    expanded /= np.linalg.norm(expanded, axis=1, keepdims=True)
    return topk_reference(expanded, qids, db, ids, model_cfg.get("k", 1000))


def assert_topk_matches(qids, ids, scores, ref, tie_eps=1e-5, score_tol=1e-4):
    """Our (query ids, per-query id lists, per-query scores) against the brute force.

    Scores agree to ``score_tol``, every returned id's score equals its reference
    score, lists are sorted, and id sets agree except for near-ties at the k-th score.
    """
    ref_qids, ref_ids, ref_scores, ref_top_ids, ref_top_scores = ref
    assert list(qids) == list(ref_qids)
    col = {d: i for i, d in enumerate(ref_ids)}
    for qi in range(len(ref_qids)):
        got_ids, got_scores = list(ids[qi]), np.asarray(scores[qi], dtype=np.float64)
        assert len(got_ids) == ref_top_ids.shape[1]
        np.testing.assert_allclose(got_scores, ref_top_scores[qi], atol=score_tol)
        assert np.all(np.diff(got_scores) <= 0)
        true = ref_scores[qi, [col[d] for d in got_ids]]
        np.testing.assert_allclose(got_scores, true, atol=score_tol)
        kth = ref_top_scores[qi, -1]
        must = {d for d, s in zip(ref_top_ids[qi], ref_top_scores[qi]) if s > kth + tie_eps}
        assert must <= set(got_ids)
        assert len(set(got_ids)) == len(got_ids)
        # order: wherever ours differs from the reference, it must be a near-tie
        for r, (a, b) in enumerate(zip(got_ids, ref_top_ids[qi])):
            if a != b:
                assert abs(ref_scores[qi, col[a]] - ref_top_scores[qi, r]) <= tie_eps


def load_result(path):
    """(query ids, per-query id lists, per-query scores) of an ILIAS json or pickle file."""
    if str(path).endswith(".json"):
        data = json.loads(Path(path).read_text())
        return list(data), [list(v) for v in data.values()], [list(v.values()) for v in data.values()]
    with open(path, "rb") as fh:
        res = pickle.load(fh)
    return res["query_ids"], res["db_ids"][res["ranks"]], res["sims"]


# ----------------------------------------------------------------------------
# Snakemake runs in a temporary working directory.
# ----------------------------------------------------------------------------
def run_snakemake(workdir, *args, config=None, check=True, timeout=600, env=None, snakefile=None):
    if config is not None:
        (Path(workdir) / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(snakefile or REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(Path(workdir) / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


class PausedShardJob:
    """Runs Snakemake (one core) so that its ``job``-th shard search (0 = the
    first) waits at its start: ``wait()`` returns once it waits there, with
    exactly ``job`` shard searches finished; ``release()`` lets it go on. A
    test stops a run at a known point this way, whatever the speed of either
    process (tests/pause_hook/sitecustomize.py)."""

    def __init__(self, workdir, job):
        workdir = Path(workdir)
        self.fifo = workdir / "pause.fifo"
        os.mkfifo(self.fifo)
        pythonpath = [str(REPO / "tests" / "pause_hook"), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(pythonpath),
            ILIAS_TEST_PAUSE_FIFO=str(self.fifo),
            ILIAS_TEST_PAUSE_JOB=str(job),
        )
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
            "--cores",
            "1",
        ]
        self.output = workdir / "paused_run.log"  # a file: an unread pipe could fill up and stall the run
        with open(self.output, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.pipe = None

    def wait(self, timeout=300):
        deadline = time.monotonic() + timeout
        while self.pipe is None:
            try:  # succeeds only once the job has opened the pipe to read
                self.pipe = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    raise AssertionError("the run ended or timed out before the job to pause:\n" + self.finish())
                time.sleep(0.05)

    def finish(self, timeout=600):
        """The run's exit, waited for; its output."""
        self.proc.wait(timeout=timeout)
        return self.output.read_text()

    def release(self):
        if self.pipe is not None:
            os.close(self.pipe)
            self.pipe = None


def planned_job_list(workdir, *args, config=None, env=None, snakefile=None):
    """(rule, output) pairs a dry run would execute (the rule all included)."""
    proc = run_snakemake(workdir, "-n", "--printshellcmds", *args, config=config, env=env, snakefile=snakefile)
    out, rule = [], None
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip()
        if line.startswith("rule ") or line.startswith("localrule "):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("output:") and rule:
            for path in line[len("output:") :].split(","):
                out.append(
                    (rule, os.path.relpath(path.strip(), workdir) if os.path.isabs(path.strip()) else path.strip())
                )
    return sorted(out)


def planned_jobs(workdir, config, env=None, snakefile=None):
    """(rule, output) of the jobs a dry run would execute, but the rule all."""
    return [
        (rule, out)
        for rule, out in planned_job_list(workdir, config=config, env=env, snakefile=snakefile)
        if rule != "all"
    ]


def changed(config, model, **changes):
    """A copy of ``config`` with one model's settings changed."""
    new = json.loads(json.dumps(config))
    new["models"][model].update(changes)
    return new


def small_dataset(directory, seed=3):
    """A small ILIAS-shaped dataset: float16, gzip, shards of unequal sizes (700,
    300, 500 rows), an adapter with in != out, selected ids."""
    return make_dataset(
        directory,
        num_instances=8,
        queries_per_instance=2,
        positives_per_instance=4,
        distractor_rows=(700, 300, 500),
        dim=32,
        adapter_out_dim=24,
        seed=seed,
    )


@pytest.fixture
def dataset(tmp_path):
    return small_dataset(tmp_path / "data")


def model_config(paths, **overrides):
    cfg = {
        "query_hdf5": paths["query_hdf5"],
        "positive_hdf5": paths["positive_hdf5"],
        "distractor_hdf5": paths["distractor_hdf5"],
        "total_distractors": 3,
        "k": 50,
    }
    cfg.update(overrides)
    return {key: value for key, value in cfg.items() if value is not None}
