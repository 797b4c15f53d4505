#!/bin/bash
# The GPU checks of issue 16 in one device call, for a session lent a GPU
# machine. That machine has torch, h5py, numpy and pytest but reaches no
# package registry, so zlib-ng travels as a wheel, fetched here first:
#
#   .venv/bin/pip download 'zlib-ng>=0.5' --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 -d bench/wheels
#
# then (device tool) run with command "bash bench/gpu_check.sh", carry
# ["bench/wheels"] and a timeout_s of about 540. It runs the GPU tests, writes
# one real-format 1,000,000 x 1,024 float16 file (gzip level 0, h5py's
# automatic chunks; 36 s on a 2-core AMD EPYC) with 1,000 image + 1,000 text
# queries, and searches it in process as a GPU shard job does, with each
# scoring, twice, against reading it with as many threads, and against
# float32 on the CPU for the top-k. Logs go to $OUT.
#
# PYTHON, DEVICE, THREADS and WORK override the defaults (a dry run on a CPU:
# PYTHON=.venv/bin/python DEVICE=cpu THREADS=2 bash bench/gpu_check.sh).
set -uo pipefail
python=${PYTHON:-python3}
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
export PYTHONPATH=$PWD/scripts PYTHONUNBUFFERED=1
status=0
"$python" -m pip install --quiet --no-index --find-links bench/wheels zlib-ng || status=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
"$python" -m pytest -q -rs tests/test_gpu.py 2>&1 | tee "$out/gpu_tests.log" || status=1
"$python" bench/run_bench.py --shards 1 --shard-on "${DEVICE:-cuda}" --threads "${THREADS:-8}" --repeat 2 \
    --work "${WORK:-/tmp/bench_work}" 2>&1 | tee "$out/gpu_shard.log" || status=1
exit $status
