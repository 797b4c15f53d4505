"""Models compared with a reference model as a paper must: paired per-query
differences of AP, with a bootstrap interval, a randomization test and Holm's
adjustment.

Queries are the paired unit: both models answer the same queries, so the
per-query differences carry the comparison, and resampling or sign-flipping
them keeps the pairing. A row's mAP is a weighted mean of per-query AP:
weight 1/n over all n queries, and for a category 1/(instances x queries of
the query's instance) (the category mAP averages, over its instances, each
instance's mean AP), so a row's delta is exactly map - reference_map.

- Interval: percentile bootstrap of the weighted mean difference, queries
  resampled with replacement, ``RESAMPLES`` times.
- p-value: two-sided paired randomization test (each query's difference
  flipped in sign at random) of a mean difference of 0; every one of the 2^n
  sign patterns where a row has at most ``EXACT_UP_TO`` queries, else
  ``RESAMPLES`` random ones, p = (1 + as extreme) / (1 + resamples).
- Holm's step-down adjustment over all rows of a query set.

Every random draw comes from ``SEED`` and the row's name: a rerun gives the
same table.
"""

import itertools
import zlib

import numpy as np

RESAMPLES = 10_000
SEED = 20261207
EXACT_UP_TO = 16
TIE = 1e-6  # AP (percent) differences within this are ties
CHUNK = 1_000  # resamples drawn at a time (memory)


def _rng(name):
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def weighted_delta(differences, weights):
    return float(np.dot(weights, differences) / weights.sum())


def bootstrap_interval(differences, weights, name, resamples=RESAMPLES, level=0.95):
    """Percentile interval of the weighted mean difference, queries resampled."""
    d, w = np.asarray(differences, np.float64), np.asarray(weights, np.float64)
    if np.all(d == d[0]):
        return float(d[0]), float(d[0])
    rng, means, wd = _rng(name), [], w * d
    for start in range(0, resamples, CHUNK):
        idx = rng.integers(0, d.size, size=(min(CHUNK, resamples - start), d.size))
        means.append(wd[idx].sum(axis=1) / w[idx].sum(axis=1))
    means = np.concatenate(means)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def sign_flip_p_value(differences, weights, name, resamples=RESAMPLES):
    """Two-sided paired randomization test of a weighted mean difference of 0."""
    wd = np.asarray(weights, np.float64) * np.asarray(differences, np.float64)
    observed = abs(wd.sum())
    tolerance = 1e-12 * max(1.0, np.abs(wd).sum())
    if wd.size <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=wd.size)))
        return float(np.mean(np.abs(signs @ wd) >= observed - tolerance))
    rng, extreme = _rng(name), 0
    for start in range(0, resamples, CHUNK):
        signs = rng.choice((-1.0, 1.0), size=(min(CHUNK, resamples - start), wd.size))
        extreme += int(np.count_nonzero(np.abs(signs @ wd) >= observed - tolerance))
    return (1 + extreme) / (1 + resamples)


def holm(p_values):
    """Holm's step-down adjusted p-values, in the order given."""
    p = np.asarray(p_values, np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def category_weights(query_ids, taxonomy, instance_of):
    """{category: (query indices, weights)}: 1/(instances x queries of the instance)."""
    instances = instance_of(np.asarray(query_ids, dtype=str))
    by_category = {}
    for index, inst in enumerate(instances.tolist()):
        if inst in taxonomy:
            by_category.setdefault(taxonomy[inst][0], {}).setdefault(inst, []).append(index)
    rows = {}
    for category, per_instance in sorted(by_category.items()):
        indices, weights = [], []
        for members in per_instance.values():
            indices += members
            weights += [1.0 / (len(per_instance) * len(members))] * len(members)
        rows[category] = (np.array(indices), np.array(weights))
    return rows


def compare(query_set, model, reference, model_report, reference_report, groups):
    """Rows of comparison.tsv for one model against the reference on one query
    set; ``groups`` maps a category to (query indices, weights); 'all' first."""
    query_ids = list(reference_report["queries"])
    if list(model_report["queries"]) != query_ids:
        raise ValueError(f"{model} and {reference} were evaluated on other {query_set} queries")
    ap = np.array([model_report["queries"][q] for q in query_ids])
    ref = np.array([reference_report["queries"][q] for q in query_ids])
    rows = []
    everything = (np.arange(len(query_ids)), np.full(len(query_ids), 1.0 / len(query_ids)))
    for category, (indices, weights) in [("all", everything), *groups.items()]:
        d = ap[indices] - ref[indices]
        name = f"{query_set}/{model}/{reference}/{category}"
        low, high = bootstrap_interval(d, weights, name)
        maps = (model_report, reference_report)
        values = [r["map"] if category == "all" else r["categories"][category] for r in maps]
        rows.append(
            {
                "query_set": query_set,
                "model": model,
                "reference": reference,
                "category": category,
                "queries": int(indices.size),
                "map": values[0],
                "reference_map": values[1],
                "delta": weighted_delta(d, weights),
                "ci_low": low,
                "ci_high": high,
                "p_value": sign_flip_p_value(d, weights, name),
                "wins": int(np.sum(d > TIE)),
                "ties": int(np.sum(np.abs(d) <= TIE)),
                "losses": int(np.sum(d < -TIE)),
            }
        )
    return rows


def add_holm(rows):
    """p_holm over the rows of each query set (every model and category)."""
    for query_set in {row["query_set"] for row in rows}:
        family = [row for row in rows if row["query_set"] == query_set]
        for row, adjusted in zip(family, holm([row["p_value"] for row in family])):
            row["p_holm"] = adjusted
    return rows


def changed_queries(query_set, model, reference, model_report, reference_report, categories, top=20):
    """The ``top`` queries the model gains most on and loses most on."""
    query_ids = list(reference_report["queries"])
    d = np.array([model_report["queries"][q] - reference_report["queries"][q] for q in query_ids])
    order = np.argsort(-d, kind="stable")
    picks = [("gain", i) for i in order[:top] if d[i] > TIE] + [("loss", i) for i in order[::-1][:top] if d[i] < -TIE]
    return [
        {
            "query_set": query_set,
            "model": model,
            "reference": reference,
            "change": change,
            "query": query_ids[i],
            "category": categories.get(query_ids[i], ""),
            "ap": model_report["queries"][query_ids[i]],
            "reference_ap": reference_report["queries"][query_ids[i]],
            "difference": float(d[i]),
        }
        for change, i in picks
    ]


COLUMNS = [
    "query_set",
    "model",
    "reference",
    "category",
    "queries",
    "map",
    "reference_map",
    "delta",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "wins",
    "ties",
    "losses",
]


def latex_table(rows, reference):
    """A booktabs table fragment: one row per model, per query set its mAP, the
    delta and its interval, a dagger where p_holm < 0.05."""
    overall = [row for row in rows if row["category"] == "all"]
    query_sets = sorted({row["query_set"] for row in overall}, key=lambda s: (s != "image", s))
    models = list(dict.fromkeys(row["model"] for row in overall))
    cell = {(row["model"], row["query_set"]): row for row in overall}
    escape = lambda text: str(text).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&")
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{l" + "rr" * len(query_sets) + "}",
        r"\toprule",
        "Model & " + " & ".join(rf"\multicolumn{{2}}{{c}}{{{escape(s)} queries}}" for s in query_sets) + r" \\",
        " & " + " & ".join(r"mAP & $\Delta$ [95\% CI]" for _ in query_sets) + r" \\",
        r"\midrule",
    ]
    first = cell[next(iter(cell))] if cell else None
    if first is not None:
        ref_maps = [next((cell[m, s]["reference_map"] for m in models if (m, s) in cell), None) for s in query_sets]
        lines.append(
            escape(reference)
            + " (reference) & "
            + " & ".join(f"{value:.2f} & --" if value is not None else "-- & --" for value in ref_maps)
            + r" \\"
        )
    for model in models:
        parts = []
        for s in query_sets:
            row = cell.get((model, s))
            if row is None:
                parts.append("-- & --")
                continue
            mark = r"$^\dagger$" if row["p_holm"] < 0.05 else ""
            parts.append(f"{row['map']:.2f} & {row['delta']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]{mark}")
        lines.append(escape(model) + " & " + " & ".join(parts) + r" \\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{mAP (\%) against the reference {escape(reference)}. $\Delta$: mean paired per-query "
        rf"difference of AP with its 95\% percentile bootstrap interval ({RESAMPLES} resamples of the queries); "
        rf"$^\dagger$: Holm-adjusted $p < 0.05$ in a two-sided paired randomization test ({RESAMPLES} random "
        rf"sign flips, exact up to {EXACT_UP_TO} queries); seed {SEED}.}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def forest_plot(rows, path, reference):
    """Delta with its 95 % interval for every model, query set and category."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['model']} · {r['query_set']} · {r['category']}" for r in rows]
    height = max(3.0, 0.28 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(8, height))
    y = list(range(len(rows)))[::-1]
    for yi, row in zip(y, rows):
        color = "C0" if row["category"] == "all" else "C7"
        ax.errorbar(
            row["delta"],
            yi,
            xerr=[[row["delta"] - row["ci_low"]], [row["ci_high"] - row["delta"]]],
            fmt="o",
            color=color,
            capsize=2,
            markersize=4 if row["category"] != "all" else 6,
        )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel(f"mAP difference against {reference} (percentage points, 95 % bootstrap interval)")
    ax.set_title("Paired per-query comparison")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
