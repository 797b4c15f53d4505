"""Snakemake script: generate the small synthetic ILIAS-shaped demo dataset."""

from pathlib import Path

from ilias_knn.demo import make_dataset
from ilias_knn.logs import run_logged


def main(snakemake):
    p = snakemake.params
    paths = make_dataset(
        Path(snakemake.output.queries).parent,
        distractor_rows=p.distractor_rows,
        dim=p.dim,
        adapter_out_dim=p.adapter_out_dim,
        seed=p.seed,
    )
    for name, path in paths.items():
        print(f"{name}: {path}")


run_logged(main, snakemake)  # noqa: F821
