"""Benchmark data shaped like ILIAS: files written exactly as ILIAS extract.py
writes them (gzip level 0, h5py's automatic chunks, variable-length ASCII
ids), or small uncompressed ones; embeddings that share a dominant direction
(unrelated pairs score about 0.4, not 0) with near-duplicate distractors."""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from ilias_knn.demo import write_feature_file

ROWS_PER_WRITE = 100_000


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def generate(folder, params):
    """Write the dataset of ``params`` (a dict) under ``folder`` unless it is there."""
    folder = Path(folder)
    stamp = folder / "params.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return paths(folder, params)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(params["seed"])
    dim = params["dim"]
    shared = unit(rng.standard_normal(dim)).astype(np.float32)
    # a unit vector with the dominant direction: about 0.4 between unrelated ones
    embed = lambda x: unit(unit(x) + 0.8 * shared).astype(np.float32)
    instances = max(1, params["text_queries"] or params["image_queries"] // 2)  # ILIAS: one text query each
    centers = embed(rng.standard_normal((instances, dim), dtype=np.float32))
    near = lambda base, noise: unit(base + noise * rng.standard_normal(base.shape, dtype=np.float32) / np.sqrt(dim))
    inst_of = np.arange(params["image_queries"]) % instances
    p = paths(folder, params)
    write_feature_file(
        p["queries"], near(centers[inst_of], 0.6), [f"inst{i:05d}/q{j}.jpg" for j, i in enumerate(inst_of)]
    )
    text_inst = np.arange(params["text_queries"]) % instances
    write_feature_file(p["text_queries"], near(centers[text_inst], 0.9), [f"inst{i:05d}" for i in text_inst])
    pos_inst = np.arange(params["positives"]) % instances
    write_feature_file(
        p["positives"], near(centers[pos_inst], 0.6), [f"inst{i:05d}/p{j}.jpg" for j, i in enumerate(pos_inst)]
    )
    for shard, path in enumerate(p["distractors"]):
        write_distractors(path, shard, params, rng, embed, near, centers)
    stamp.write_text(json.dumps(params))
    return p


def write_distractors(path, shard, params, rng, embed, near, centers):
    """One distractor file, written block by block (memory stays small)."""
    rows, dim = params["rows"], params["dim"]
    layout = {"compression": "gzip", "compression_opts": 0} if params["layout"] == "ilias" else {}
    with h5py.File(path, "w") as fh:
        ids = [f"yfcc100m/{shard:03d}{r:07d}" for r in range(rows)]
        fh.create_dataset("index", data=ids, dtype=h5py.string_dtype(encoding="ascii"))
        if params["layout"] == "ilias":
            # created whole (as extract.py does) so that h5py picks the same automatic chunks
            feats = np.empty((rows, dim), np.float16)
        dataset = None
        for lo in range(0, rows, ROWS_PER_WRITE):
            n = min(ROWS_PER_WRITE, rows - lo)
            x = embed(rng.standard_normal((n, dim), dtype=np.float32))
            dup = rng.random(n) < 0.05  # near-duplicates of other rows of the block
            x[dup] = near(x[rng.integers(0, n, dup.sum())], 0.15)
            hard = rng.random(n) < 0.001  # look-alikes of the query instances
            x[hard] = near(centers[rng.integers(0, len(centers), hard.sum())], 0.9)
            if params["layout"] == "ilias":
                feats[lo : lo + n] = x
            else:
                if dataset is None:
                    dataset = fh.create_dataset("features", shape=(rows, dim), dtype=np.float16)
                dataset[lo : lo + n] = x
        if params["layout"] == "ilias":
            fh.create_dataset("features", data=feats, dtype=feats.dtype, **layout)


def paths(folder, params):
    folder = Path(folder)
    return {
        "queries": folder / "features_image_queries.hdf5",
        "text_queries": folder / "features_text_queries.hdf5",
        "positives": folder / "features_positives.hdf5",
        "distractor_template": folder / "features_distractors_{idx}.hdf5",
        "distractors": [folder / f"features_distractors_{s:05d}.hdf5" for s in range(params["shards"])],
    }
