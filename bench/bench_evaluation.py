"""Time the ILIAS evaluation (evaluate(): mAP, oracle, scale and clutter groups,
categories) at full ILIAS size: 2,232 queries x k = 1,000, 1,000 instances,
4,715 positives. Synthetic ranked lists; the timed code is the workflow's own.

    python bench/bench_evaluation.py
"""

import time

import numpy as np

from ilias_knn.evaluation import GroundTruth, evaluate


def main(num_queries=2232, k=1000, instances=1000, positives=4715, seed=0):
    rng = np.random.default_rng(seed)
    pos_instance = np.sort(rng.integers(0, instances, positives))
    pos_ids = np.array([f"i{inst:04d}/p{j}.jpg" for j, inst in enumerate(pos_instance)])
    order = np.argsort(pos_ids)
    pos_ids, pos_instance = pos_ids[order], pos_instance[order]
    inst_names = np.array([f"i{inst:04d}" for inst in pos_instance])
    uniq, counts = np.unique(inst_names, return_counts=True)
    taxonomy = {name: (f"c{int(name[1:]) % 8}", f"c{int(name[1:]) % 8}-s{int(name[1:]) % 3}") for name in uniq}
    gt = GroundTruth(
        pos_ids,
        inst_names,
        rng.uniform(0, 0.5, positives),
        rng.integers(0, 80, positives).astype(float),
        dict(zip(uniq.tolist(), counts.tolist())),
        taxonomy,
    )
    query_ids = np.array([f"{uniq[q % len(uniq)]}/q{q}.jpg" for q in range(num_queries)])
    db_ids = np.concatenate([pos_ids, np.array([f"yfcc100m/{i:09d}" for i in range(400_000)])])
    ranks = rng.integers(0, len(db_ids), (num_queries, k))
    sims = -np.sort(-rng.random((num_queries, k)).astype(np.float32), axis=1)
    t0 = time.perf_counter()
    report = evaluate(query_ids, db_ids, sims, ranks, gt, k)
    print(
        f"evaluate {num_queries} queries x k = {k}: {time.perf_counter() - t0:.2f} s "
        f"(mAP {report['map']:.3f}, {len(report['scale'])} scale and {len(report['clutter'])} clutter groups)"
    )


if __name__ == "__main__":
    main()
