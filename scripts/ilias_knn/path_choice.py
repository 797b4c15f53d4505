"""Which way the bf16 scorer (bf16.py) scores its next block: ``DENSE`` (every
score in float32) or ``FILTERED`` (the bf16 GEMM, its bound's filter, float32
rescoring of the candidates), from the costs measured on the shard so far.

- A path's first ``warmup`` samples are dropped: a process's first bf16 GEMM
  and first rescoring take several times their steady cost.
- A path's cost is the median of its last ``window`` samples (seconds per
  entry); the filtered path's is its bf16 part (copy, GEMM, filter) plus the
  expected candidate share times the rescoring cost per candidate, the share
  being the last block's.
- The path not taken is probed every ``probe_every`` blocks, and once more at
  once when that probe says it is the cheaper: a wrong choice is corrected
  within ``probe_every + 1`` blocks, and when the choice is right the probes
  are 1 / ``probe_every`` of the blocks.
- Where more than ``dense_density`` of the entries would be candidates, the
  block is dense: rescoring them one by one cannot pay.

The same rule on every device. The chooser knows nothing of scoring: it is
fed measured costs (tests feed it made-up ones).
"""

import statistics

DENSE, FILTERED = "dense", "filtered"


class PathChooser:
    def __init__(self, dense_density=0.05, warmup=1, window=3, probe_every=14, measured=True):
        self.dense_density = dense_density
        self.warmup, self.window, self.probe_every = warmup, window, probe_every
        self.measured = measured  # False: filter wherever the candidate share allows (tests, profiles)
        self.samples = {DENSE: [], FILTERED: [], "rescore": []}
        self.seen = {DENSE: 0, FILTERED: 0, "rescore": 0}
        self.expected_density = 1.0
        self.since_probe = 0
        self.confirm = None  # a path to probe again on the next block
        self.probes = 0

    # ------------------------------------------------------------------
    def _add(self, kind, value):
        self.seen[kind] += 1
        if self.seen[kind] > self.warmup:
            self.samples[kind] = (self.samples[kind] + [value])[-self.window :]

    def record_dense(self, seconds_per_entry, candidate_share, probe=False):
        """A dense block's cost, and the share of its entries the filter would have passed."""
        self._add(DENSE, seconds_per_entry)
        self.expected_density = candidate_share
        self._after(DENSE, probe)

    def record_filtered(self, seconds_per_entry, candidate_share, rescore_seconds_per_candidate=None, probe=False):
        """A filtered block's bf16 cost per entry (copy, GEMM, filter), its
        candidate share, and the rescoring's cost per candidate (None: none rescored)."""
        self._add(FILTERED, seconds_per_entry)
        if rescore_seconds_per_candidate is not None:
            self._add("rescore", rescore_seconds_per_candidate)
        self.expected_density = candidate_share
        self._after(FILTERED, probe)

    def _after(self, path, probe):
        if probe and self.confirm is None:
            other = self._other(path)
            latest = self.samples[path][-1:] or [None]
            if latest[0] is not None and self.cost(other) is not None and self._cost(path, latest) < self.cost(other):
                self.confirm = path

    # ------------------------------------------------------------------
    def _cost(self, path, samples):
        if not samples:
            return None
        cost = statistics.median(samples)
        if path == FILTERED:
            rescore = statistics.median(self.samples["rescore"]) if self.samples["rescore"] else 0.0
            cost += self.expected_density * rescore
        return cost

    def cost(self, path):
        """The path's steady cost per entry (seconds), None while unmeasured."""
        return self._cost(path, self.samples[path])

    @staticmethod
    def _other(path):
        return FILTERED if path == DENSE else DENSE

    def best(self):
        dense, filtered = self.cost(DENSE), self.cost(FILTERED)
        if dense is None or filtered is None:
            return FILTERED if filtered is None else DENSE  # measure the one not known yet
        return FILTERED if filtered < dense else DENSE

    def plan(self):
        """(path, whether the block is a probe) for the next block."""
        if self.expected_density > self.dense_density:
            return DENSE, False
        if not self.measured:
            return FILTERED, False
        best = self.best()
        if self.cost(DENSE) is None or self.cost(FILTERED) is None:
            return best, False
        if self.confirm is not None:
            path, self.confirm = self.confirm, None
            if path != best:
                self.probes += 1
                return path, True
        self.since_probe += 1
        if self.since_probe >= self.probe_every:
            self.since_probe = 0
            self.probes += 1
            return self._other(best), True
        return best, False

    def describe(self):
        ns = lambda value: "unmeasured" if value is None else f"{value * 1e9:.3f}"
        rescore = statistics.median(self.samples["rescore"]) * 1e9 if self.samples["rescore"] else None
        return (
            f"steady ns per entry: dense {ns(self.cost(DENSE))}, filtered {ns(self.cost(FILTERED))}"
            + (f" (rescoring {rescore:.0f} per candidate)" if rescore is not None else "")
            + f"; {self.probes} probe blocks"
        )
