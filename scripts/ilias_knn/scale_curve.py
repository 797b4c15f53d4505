"""mAP versus database size from one search: the merged top-k of the positives
and the first N distractor partials is exactly the top-k of a search over that
prefix of the database, so every point comes from partials already on disk."""

import pandas as pd

from .atomic import atomic_output
from .evaluation import evaluate_merged
from .merge import iter_merged_prefixes


def curve_points(scale_points, num_distractors):
    """Distractor-shard counts to evaluate: the configured ones up to the total, plus all."""
    return sorted({p for p in scale_points if p <= num_distractors} | {num_distractors})


def scale_curve(partials, search_k, scale_points, gt, eval_k, query_set="image", expected_meta=None):
    """One row per point: distractor shards, database images, k of mAP@k, mAP
    and oracle (percent).

    ``partials``: positives' partial first, then the distractor partials in order,
    each holding a top-``search_k``.
    """
    points = curve_points(scale_points, len(partials) - 1)
    rows = []
    merged_prefixes = iter_merged_prefixes(partials, search_k, expected_meta, stops=[p + 1 for p in points])
    for shards, merged in zip(points, merged_prefixes):
        report = evaluate_merged(merged.query_set(query_set), gt, eval_k)
        rows.append(
            {
                "distractor_shards": shards,
                "database_images": merged.meta["rows_kept"],
                "k": report["k"],
                "map": report["map"],
                "oracle": report["oracle"],
            }
        )
    return pd.DataFrame(rows)


def write_tsv(df, path):
    with atomic_output(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)
