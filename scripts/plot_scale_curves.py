"""Snakemake script: plot scale curves (one model, or every model) as a PNG."""

import pandas as pd

from ilias_knn.logs import run_logged
from ilias_knn.plots import plot_curves


def main(snakemake):
    curves = {label: pd.read_csv(path, sep="\t")
              for label, path in zip(snakemake.params.labels, snakemake.input.curves)}
    plot_curves(curves, snakemake.output.png, snakemake.params.title)


run_logged(main, snakemake)  # noqa: F821
