"""Versions of the files the workflow writes for itself. Each is a param of the
rule that writes it: raising one reruns those jobs (and what reads their
files). Standard library only: the workflow reads these while Snakemake
builds its DAG."""

PARTIAL_FORMAT_VERSION = 2  # shards/*.npz (partials.py)
MERGED_FORMAT_VERSION = 2  # merged.npz (merged_result.py)
