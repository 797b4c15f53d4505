"""Seconds spent per phase of a shard search (reading, decoding, GEMM,
filtering, ...): logged by every shard job and kept in its partial's stats."""

import time
from collections import defaultdict
from contextlib import contextmanager


class PhaseTimes:
    """Accumulated wall seconds per phase name; safe to share between the
    reading thread and the scoring thread (each adds its own phases)."""

    def __init__(self):
        self.seconds = defaultdict(float)

    @contextmanager
    def __call__(self, phase):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start

    def add(self, phase, seconds):
        self.seconds[phase] += seconds

    def summary(self):
        return ", ".join(f"{name} {value:.2f} s" for name, value in sorted(self.seconds.items()))
