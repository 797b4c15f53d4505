"""Snakemake script: the ILIAS evaluation (mAP@k, oracle, groups) of one query set."""

import logging

import orjson

from ilias_knn.atomic import atomic_output
from ilias_knn.evaluation import evaluate_merged, read_ground_truth
from ilias_knn.imported import check_results, read_results
from ilias_knn.logs import run_logged
from ilias_knn.merged_result import load_merged


def main(snakemake):
    params = snakemake.params
    gt = read_ground_truth(params.dataset_dir, snakemake.input.get("taxonomy"))
    log = logging.getLogger("ilias_knn")
    if snakemake.input.get("similarities"):  # results made elsewhere
        path = snakemake.input.similarities
        merged = read_results(path, params.query_set)
        check_results(merged, path, gt, params.dataset_dir, params.query_set, params.eval_k)
    else:
        merged = load_merged(snakemake.input.merged).query_set(params.query_set)
    if snakemake.config["eval_k"] > params.eval_k:
        log.warning(
            "eval_k is %d but this model was searched with k = %d: evaluating mAP@%d "
            "(raise the model's k to evaluate at eval_k).",
            snakemake.config["eval_k"],
            params.eval_k,
            params.eval_k,
        )
    report = evaluate_merged(merged, gt, params.eval_k)
    if report["k"] < params.eval_k:
        log.warning("only %d results per query (the whole database): evaluating mAP@%d.", report["k"], report["k"])
    with atomic_output(snakemake.output.report) as tmp:
        tmp.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    log.info("%s queries: mAP@%d %.2f, oracle %.2f", params.query_set, report["k"], report["map"], report["oracle"])


run_logged(main, snakemake)  # noqa: F821
