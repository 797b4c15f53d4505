"""Snakemake script: the ILIAS evaluation (mAP@k, oracle, groups) of one query set."""

import logging

import orjson

from ilias_knn.atomic import atomic_output
from ilias_knn.evaluation import evaluate_merged, read_ground_truth
from ilias_knn.logs import run_logged
from ilias_knn.merged import load_merged


def main(snakemake):
    params = snakemake.params
    gt = read_ground_truth(params.dataset_dir, snakemake.input.get("taxonomy"))
    merged = load_merged(snakemake.input.merged).query_set(params.query_set)
    if params.eval_k > merged.sims.shape[1]:
        logging.getLogger("ilias_knn").warning(
            "eval_k=%d but only %d results per query were searched: evaluating those.",
            params.eval_k, merged.sims.shape[1])
    report = evaluate_merged(merged, gt, params.eval_k)
    with atomic_output(snakemake.output.report) as tmp:
        tmp.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    logging.getLogger("ilias_knn").info(
        "%s queries: mAP@%d %.2f, oracle %.2f", params.query_set, params.eval_k, report["map"], report["oracle"])


run_logged(main, snakemake)  # noqa: F821
