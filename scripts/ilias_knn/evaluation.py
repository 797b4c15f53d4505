"""ILIAS evaluation: mAP@k, oracle, per category / subcategory, per scale and
clutter group, vectorised over queries.

Protocol (that of the ILIAS evaluation code): the instance of a query or a
positive is its id up to the first '/'. For a query with P positives, its
returned list sorted by descending score and cut to k, and hits at ranks
r_1 < r_2 < ...: AP = (1 / min(k, P)) * sum_j prec(r_j), where prec is
taken at the end of the group of equal scores holding r_j (scikit-learn's
grouping of ties; without ties prec(r_j) = j / r_j). Scale and clutter
groups drop the instance's positives outside the group from the list and
from P before cutting to k.
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

SCALE_EDGES = [0, 0.06880213760855043, 0.13526567164179104, 0.2729876723163842, float("inf")]
CLUTTER_EDGES = [0, 18, 33, 53, float("inf")]


def group_names(edges):
    return [f"{lo}-{hi}" for lo, hi in zip(edges[:-1], edges[1:])]


def instance_of(ids):
    return np.char.partition(np.asarray(ids, dtype=str), "/")[:, 0]


@dataclass
class GroundTruth:
    positive_ids: np.ndarray  # sorted str
    positive_instance: np.ndarray  # str, parallel to positive_ids
    scale: np.ndarray  # float
    clutter: np.ndarray  # float
    positives_per_instance: dict
    taxonomy: dict  # instance -> (category, subcategory)
    path: str = "positive_ids.txt"  # where the positives were read, for messages
    taxonomy_path: str = None


def read_ground_truth(dataset_dir, taxonomy_path=None):
    """ILIAS ``image_ids/positive_ids.txt`` (id,scale,clutter) and the taxonomy."""
    path = Path(dataset_dir) / "image_ids" / "positive_ids.txt"
    if not path.is_file():
        raise InputError(f"{path}: file does not exist. dataset_dir must be the ILIAS folder holding image_ids/.")
    ids, scale, clutter = [], [], []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.strip().split(",")
        try:
            scale.append(float(fields[1]))
            clutter.append(float(fields[2]))
        except (IndexError, ValueError):
            raise InputError(
                f"{path}: line {number} ({line.strip()[:60]!r}) is not 'id,scale,clutter'. dataset_dir "
                "must be the ILIAS folder holding image_ids/; re-download the ILIAS image ids."
            ) from None
        ids.append(fields[0])
    if not ids:
        raise InputError(f"{path}: no lines 'id,scale,clutter'. Re-download the ILIAS image ids.")
    ids = np.array(ids, dtype=str)
    order = np.argsort(ids)
    instances = instance_of(ids[order])
    uniq, counts = np.unique(instances, return_counts=True)
    taxonomy = read_taxonomy(taxonomy_path) if taxonomy_path else {}
    return GroundTruth(
        ids[order],
        instances,
        np.array(scale)[order],
        np.array(clutter)[order],
        dict(zip(uniq.tolist(), counts.tolist())),
        taxonomy,
        str(path),
        taxonomy_path,
    )


def read_lines(path):
    try:
        return Path(path).read_text().splitlines()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read it ({exc}). It must be a readable text file.") from exc


def read_taxonomy(path):
    """ILIAS ``misc/taxonomy.json``: category -> subcategory -> group -> [instances]."""
    try:
        tree = json.loads(Path(path).read_text())
        return {
            instance: (category, f"{category}-{subcategory}")
            for category, subcategories in tree.items()
            for subcategory, groups in subcategories.items()
            for instances in groups.values()
            for instance in instances
        }
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise InputError(f"{path}: cannot read the taxonomy ({exc}). Use ILIAS misc/taxonomy.json.") from exc


def check_query_instances(query_ids, gt, queries):
    """Every query's instance (its id up to the first '/') needs positives in
    the ground truth, and a place in the taxonomy when there is one; else its
    AP means nothing. ``queries`` names the queries in the message."""
    instances = set(instance_of(query_ids).tolist())
    without_positives = sorted(instances - set(gt.positives_per_instance))
    if without_positives:
        raise InputError(
            f"{queries}: {len(without_positives)} query instance(s) have no positive in {gt.path} "
            f"(first: {without_positives[:3]}). Check that dataset_dir matches these features "
            "(ids must be 'instance/...')."
        )
    untaxed = sorted(instances - set(gt.taxonomy)) if gt.taxonomy else []
    if untaxed:
        raise InputError(
            f"{queries}: {len(untaxed)} query instance(s) are not in the taxonomy {gt.taxonomy_path} "
            f"(first: {untaxed[:3]}). Use the ILIAS misc/taxonomy.json, or leave taxonomy unset."
        )


def average_precision(hits, scores, valid, k, num_positives):
    """Per-row AP@k of sorted lists (nq x L): ``hits`` and ``valid`` boolean masks
    (invalid entries are dropped before the cut to k), ``num_positives`` (nq,)."""
    nq, width = hits.shape
    if width == 0:
        return np.zeros(nq), np.zeros(nq)
    rank = np.cumsum(valid, axis=1)
    valid = valid & (rank <= k)
    hits = hits & valid
    cum_hits = np.cumsum(hits, axis=1)
    cols = np.arange(width)
    # scores of dropped entries copy the last kept one so they never split a tie group
    last_valid = np.maximum.accumulate(np.where(valid, cols, 0), axis=1)
    filled = np.take_along_axis(scores, last_valid, axis=1)
    is_end = np.ones_like(valid)
    is_end[:, :-1] = filled[:, :-1] != filled[:, 1:]
    group_end = np.minimum.accumulate(np.where(is_end, cols, width - 1)[:, ::-1], axis=1)[:, ::-1]
    end_hits = np.take_along_axis(cum_hits, group_end, 1)
    end_rank = np.maximum(np.take_along_axis(np.cumsum(valid, axis=1), group_end, 1), 1)
    precision_sum = np.where(hits, end_hits / end_rank, 0.0).sum(axis=1)
    denom = np.minimum(k, num_positives)
    ap = np.divide(precision_sum, denom, out=np.zeros(nq), where=denom > 0)
    listed = valid.sum(axis=1)
    found = hits.sum(axis=1)
    oracle = np.divide(found * k, listed * num_positives, out=np.zeros(nq), where=(listed > 0) & (num_positives > 0))
    return ap, oracle


def evaluate(query_ids, db_ids, sims, ranks, gt, k):
    """The ILIAS report of one query set: percentages, as a plain dict."""
    query_ids = np.asarray(query_ids, dtype=str)
    check_query_instances(query_ids, gt, "the queries")
    query_instance = instance_of(query_ids)
    # each database entry: index of its positive (or -1)
    db_ids = np.asarray(db_ids).astype(str)
    where = np.searchsorted(gt.positive_ids, db_ids)
    where[where == len(gt.positive_ids)] = 0
    db_positive = np.where(gt.positive_ids[where] == db_ids, where, -1)
    entry_positive = db_positive[ranks]  # nq x L
    is_hit = (entry_positive >= 0) & (gt.positive_instance[np.maximum(entry_positive, 0)] == query_instance[:, None])
    num_pos = np.array([gt.positives_per_instance[i] for i in query_instance])
    all_valid = np.ones_like(is_hit)
    ap, oracle = average_precision(is_hit, sims, all_valid, k, num_pos)
    report = {
        "map": float(ap.mean() * 100),
        "oracle": float(oracle.mean() * 100),
        "queries": dict(zip(query_ids.tolist(), (ap * 100).tolist())),
        "scale": _per_group(gt.scale, SCALE_EDGES, is_hit, entry_positive, sims, k, query_instance, gt),
        "clutter": _per_group(gt.clutter, CLUTTER_EDGES, is_hit, entry_positive, sims, k, query_instance, gt),
    }
    report["categories"], report["subcategories"] = _per_category(ap, query_instance, gt)
    return report


def _per_group(values, edges, is_hit, entry_positive, sims, k, query_instance, gt):
    out = {}
    for name, lo, hi in zip(group_names(edges), edges[:-1], edges[1:]):
        inside = (values >= lo) & (values < hi)
        # positives of each query's instance left in this group
        kept_per_instance = defaultdict(int)
        for inst, keep in zip(gt.positive_instance.tolist(), inside.tolist()):
            kept_per_instance[inst] += keep
        num_pos = np.array([kept_per_instance[i] for i in query_instance])
        dropped = is_hit & ~inside[np.maximum(entry_positive, 0)]
        ap, _ = average_precision(is_hit & ~dropped, sims, ~dropped, k, num_pos)
        evaluated = num_pos > 0
        if evaluated.any():
            out[name] = float(ap[evaluated].mean() * 100)
    return out


def _per_category(ap, query_instance, gt):
    if not gt.taxonomy:
        return {}, {}
    per_instance = defaultdict(list)
    for inst, value in zip(query_instance.tolist(), (ap * 100).tolist()):
        per_instance[inst].append(value)
    categories, subcategories = defaultdict(list), defaultdict(list)
    for inst, values in per_instance.items():
        category, subcategory = gt.taxonomy[inst]
        categories[category].append(np.mean(values))
        subcategories[subcategory].append(np.mean(values))
    mean = lambda groups: {key: float(np.mean(v)) for key, v in groups.items()}
    return mean(categories), mean(subcategories)


def evaluate_merged(merged, gt, k):
    """The report of a merged top-k at mAP@k, k capped at the results per query
    (beyond them the list says nothing, and the oracle would pass 100 %); the
    k used is in the report."""
    k = max(1, min(k, merged.sims.shape[1]))
    report = evaluate(merged.query_ids, merged.db_ids, merged.sims, merged.ranks, gt, k)
    return {"k": k, **report}
