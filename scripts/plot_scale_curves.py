"""Snakemake script: plot scale curves (one model, or every model) as a PNG."""

import json
import logging

import pandas as pd

from ilias_knn.logs import run_logged
from ilias_knn.plots import plot_curves


def main(snakemake):
    expanded_reports = iter(snakemake.input.expanded_reports)
    curves = []
    for params, path in zip(snakemake.params.curves, snakemake.input.curves):
        curve = {"label": params["label"], "table": pd.read_csv(path, sep="\t")}
        if params["expanded_label"]:
            with open(next(expanded_reports)) as fh:
                curve["expanded"] = (params["expanded_label"], json.load(fh)["map"])
        curves.append(curve)
    plot_curves(curves, snakemake.output.png, snakemake.params.title)
    log = logging.getLogger("ilias_knn")
    log.info("%s: %s", snakemake.output.png, snakemake.params.title)
    for curve in curves:
        log.info("curve %r: mAP %s", curve["label"], ", ".join(f"{v:.2f}" for v in curve["table"]["map"]))
        if curve.get("expanded"):
            log.info("point %r: mAP %.2f", *curve["expanded"])


run_logged(main, snakemake)  # noqa: F821
