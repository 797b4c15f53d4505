"""Cluster resources that grow on retries: a job retried after running out of
memory or time (the SLURM profile's ``retries``) asks for more than the attempt
before it, since the same request would fail the same way. Standard library
only: the workflow uses these while Snakemake builds its DAG."""

RETRY_GROWTH = 1.5  # each retry asks for this much more memory and time


def attempt_factor(attempt):
    return RETRY_GROWTH ** (attempt - 1)


def grown_with_attempt(base):
    """A Snakemake resource callable: ``base`` on the first attempt, grown on retries."""
    return lambda wildcards, attempt: int(base * attempt_factor(attempt))
