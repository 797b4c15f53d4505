"""Which device and scorer a shard search uses, and the scorer itself.

``scoring: auto`` on the CPU is decided by measurement: the float32 GEMM
(numpy's BLAS) and the bfloat16 GEMM (torch) are timed on this machine, and
bf16 is taken only where its GEMM is at least ``BF16_MIN_SPEEDUP`` times as
fast (the bf16 scorer also filters and rescores, which the margin pays
for). The rates are kept in a small file per kind of machine (CPU model and
flags, core count, library versions), so a machine is measured once, not
once per job; ``ILIAS_KNN_CACHE`` moves that folder.
"""

import hashlib
import json
import logging
import os
import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from . import features
from .atomic import atomic_output
from .cache import cache_dir
from .errors import InputError

log = logging.getLogger(__name__)

BF16_MIN_SPEEDUP = 1.5
# rows of a shard scored densely before the bf16 filter pays, per top-k entry
# (until the candidate share falls to about 3 %), and a filtered block's cost
# over its bf16 GEMM alone (copy, filter, rescoring): measured on a Zen 4,
# bench/README.md
DENSE_ROWS_PER_K = 40
BF16_OVERHEAD = 1.25
PROBE_SHAPE = (512, 1024, 1024)  # queries, dimension, rows: about 1 GFLOP per GEMM


def nvidia_driver_present():
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()


def resolve_device(device):
    """ "cpu" or "cuda" for a configured device ("auto": cuda when torch sees one)."""
    if device == "auto":
        if not nvidia_driver_present():  # no GPU: decided without importing torch
            return "cpu"
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("device: cuda was asked for, but torch sees no CUDA GPU. Use cpu or auto.")
        # TF32 would round the inputs to 10-bit mantissas: scores must stay float32-exact.
        torch.backends.cuda.matmul.allow_tf32 = False
    return device


def prepare_queries(query_feats, adapter):
    """Float32 queries, adapted when an adapter is given (numpy, on the CPU)."""
    q = np.ascontiguousarray(query_feats, dtype=np.float32)
    return adapter(q) if adapter is not None else q


def machine_identity(threads):
    """What the GEMM rates depend on, as one string (torch is not imported)."""
    try:
        with open("/proc/cpuinfo") as fh:
            cpuinfo = fh.read()
    except OSError:
        cpuinfo = ""
    lines = {line.split(":")[0].strip(): line for line in cpuinfo.splitlines() if ":" in line}
    parts = [
        platform.machine(),
        lines.get("model name", ""),
        lines.get("flags", ""),
        str(os.cpu_count()),
        f"numpy {np.__version__}",
        f"torch {metadata.version('torch')}",
        f"threads {threads}",
    ]
    return "\n".join(parts)


def measure_gemm_rates(threads, shape=PROBE_SHAPE, repeat=3):
    """GFLOP/s of numpy's float32 GEMM and torch's bfloat16 GEMM on ``threads``
    threads, for (queries, dimension, rows) = ``shape``: the best of ``repeat``."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    nq, dim, rows = shape
    rng = np.random.default_rng(0)
    q = rng.standard_normal((nq, dim), dtype=np.float32)
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    out = np.empty((nq, rows), np.float32)
    q_bf16, x_bf16 = torch.from_numpy(q).bfloat16(), torch.from_numpy(x).bfloat16()
    out_bf16 = torch.empty((nq, rows), dtype=torch.bfloat16)
    kernels = {"fp32": lambda: np.matmul(q, x.T, out=out), "bf16": lambda: torch.mm(q_bf16, x_bf16.T, out=out_bf16)}
    rates = {}
    with threadpool_limits(limits=threads, user_api="blas"):
        for name, kernel in kernels.items():
            kernel()  # warm-up
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                kernel()
                best = min(best, time.perf_counter() - t0)
            rates[name] = 2 * nq * dim * rows / best / 1e9
    rates["torch_start_seconds"] = measure_torch_start()
    return rates


def measure_torch_start(repeat=2):
    """Seconds a job spends to start with torch, beyond a plain Python start:
    importing it and a first bf16 GEMM (what the bf16 scorer costs before it
    saves anything)."""
    import subprocess
    import sys

    def start(code):
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            best = min(best, time.perf_counter() - t0)
        return best

    with_torch = "import torch; a = torch.ones(64, 64, dtype=torch.bfloat16); torch.mm(a, a)"
    return max(0.0, start(with_torch) - start("import numpy"))


def bf16_saves(rates, work):
    """Seconds the bf16 scorer is expected to save on ``work`` (queries, rows,
    dimension, k) over float32, its start (torch) paid: the GEMM time saved on
    the blocks it can filter (about all but the first DENSE_ROWS_PER_K x k
    rows, where more candidates pass than rescoring one by one can take), each
    at BF16_OVERHEAD times its bf16 GEMM."""
    num_queries, rows, dim, k = work
    filtered_rows = max(0.0, rows - DENSE_ROWS_PER_K * k)
    flops = 2.0 * num_queries * filtered_rows * dim
    return flops / 1e9 * (1 / rates["fp32"] - BF16_OVERHEAD / rates["bf16"]) - rates["torch_start_seconds"]


def gemm_rates(threads):
    """(rates, where they come from): measured once per kind of machine."""
    identity = machine_identity(threads)
    path = cache_dir() / f"gemm-rates-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.json"
    try:
        cached = json.loads(path.read_text())
        if cached.get("identity") == identity and "torch_start_seconds" in cached["rates"]:
            return cached["rates"], f"measured {cached['measured']}, cached in {path}"
    except (OSError, ValueError, KeyError):
        pass
    rates = measure_gemm_rates(threads)
    measured = time.strftime("%Y-%m-%d %H:%M")
    try:
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps({"identity": identity, "rates": rates, "measured": measured}))
        where = f"measured now, cached in {path}"
    except OSError:
        where = "measured now (not cached: the cache folder is not writable)"
    return rates, where


def choose_scoring(scoring, device, threads=1, work=None):
    """(scoring, why) for a configured ``scoring`` on ``device``; ``work``
    (queries, rows, dimension, k of the shard), when given, lets ``auto``
    keep float32 on a shard too small for bf16 to repay its start."""
    if scoring != "auto":
        return scoring, "configured"
    if str(device).startswith("cuda"):
        return "fp32", "auto on a GPU: the float32 GEMM is far faster than reading the shard"
    rates, where = gemm_rates(threads)
    return choose_cpu_scoring(rates, work, f"on {threads} thread(s), {where}")


def choose_cpu_scoring(rates, work=None, where=""):
    """(scoring, why) from measured ``rates`` (GFLOP/s of each GEMM, seconds of
    torch's start): bf16 where its GEMM is at least BF16_MIN_SPEEDUP times as
    fast and, for a known ``work``, saves more than its start costs."""
    ratio = rates["bf16"] / rates["fp32"]
    why = (
        f"auto: bf16 GEMM {rates['bf16']:.1f} GFLOP/s, fp32 GEMM {rates['fp32']:.1f} GFLOP/s "
        f"({ratio:.2f}x; bf16 from {BF16_MIN_SPEEDUP}x) {where}"
    ).rstrip()
    if ratio < BF16_MIN_SPEEDUP:
        return "fp32", why
    if work is not None:
        saved = bf16_saves(rates, work)
        why += (
            f"; on this shard bf16 would save {saved:.1f} s (torch's start {rates['torch_start_seconds']:.1f} s paid)"
        )
        if saved <= 0:
            return "fp32", why
    return "bf16", why


def make_scorer(scoring, device, queries, adapter=None, threads=1):
    """The scorer of ``scoring`` (fp32 or bf16) on ``device``."""
    if str(device) != "cpu" or scoring == "bf16" or features.converts_with_torch():
        import torch

        torch.set_num_threads(threads)
    if scoring == "bf16":
        from .bf16 import Bf16Scorer

        return Bf16Scorer(queries, device, adapter)
    if str(device) != "cpu":
        from .scoring import TorchFp32Scorer

        return TorchFp32Scorer(queries, device, adapter)
    from .scoring import Fp32Scorer

    return Fp32Scorer(queries, adapter)
