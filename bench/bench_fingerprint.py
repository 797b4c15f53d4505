"""What the content check before the searches costs (fingerprint.py), on
real-format distractor files (1M x 1,024 float16 as ILIAS writes them, made
by run_bench.py's data step):

- a fingerprint computed from the page cache and from storage (the file's
  pages dropped first: a model's 200 GB are not cached);
- a fingerprint taken from the cache (the file unchanged: one stat, one
  small read), as every run after the first does.

    python bench/bench_fingerprint.py [--data bench/work/data_ilias] [--repeat 5]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ilias_knn.fingerprint import FingerprintCache, compute_fingerprint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import cpu_kind, evict_from_page_cache  # noqa: E402


def seconds(function, repeat, before=lambda: None):
    times = []
    for _ in range(repeat):
        before()
        t0 = time.perf_counter()
        function()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parent / "work" / "data_ilias"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    files = sorted(Path(args.data).glob("features_distractors_*.hdf5"))
    if not files:
        sys.exit(f"no distractor files in {args.data}: run bench/run_bench.py --read-only first")
    print(f"machine: {cpu_kind()}; {len(files)} files of {files[0].stat().st_size / 2**30:.2f} GiB")
    path = files[0]
    fmt = lambda t: f"median {t[0] * 1e3:.2f} ms (min {t[1] * 1e3:.2f}, max {t[2] * 1e3:.2f})"
    print("computed, page cache:", fmt(seconds(lambda: compute_fingerprint(path), args.repeat)))
    print(
        "computed, from storage:",
        fmt(seconds(lambda: compute_fingerprint(path), args.repeat, lambda: evict_from_page_cache([path]))),
    )
    with tempfile.TemporaryDirectory() as folder:
        FingerprintCache(folder, writable=True).fingerprint(path)
        print(
            "from the cache (file unchanged):",
            fmt(seconds(lambda: FingerprintCache(folder).fingerprint(path), args.repeat)),
        )
    with tempfile.TemporaryDirectory() as folder:
        evict_from_page_cache(files)
        t0 = time.perf_counter()
        cache = FingerprintCache(folder, writable=True)
        for f in files:
            cache.fingerprint(f)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = FingerprintCache(folder)
        for f in files:
            again.fingerprint(f)
        print(
            f"{len(files)} files, first run (from storage) {first * 1e3:.1f} ms, next run (cached) "
            f"{(time.perf_counter() - t0) * 1e3:.2f} ms"
        )


if __name__ == "__main__":
    main()
