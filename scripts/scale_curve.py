"""Snakemake script: mAP@k of one query set at growing prefixes of the database."""

from ilias_knn.evaluation import read_ground_truth
from ilias_knn.logs import run_logged
from ilias_knn.scale_curve import scale_curve, write_tsv


def main(snakemake):
    params = snakemake.params
    gt = read_ground_truth(params.dataset_dir, None)
    partials = [snakemake.input.positives, *snakemake.input.distractors]
    df = scale_curve(partials, params.k, params.scale_points, gt, params.eval_k, params.query_set)
    write_tsv(df, snakemake.output.tsv)
    print(df.to_string(index=False))


run_logged(main, snakemake)  # noqa: F821
