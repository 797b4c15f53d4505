"""Synthetic ILIAS-shaped data: queries and positives clustered around instances,
distractors spread out, all L2-normalised; plus an adapter and selected ids."""

import json
from pathlib import Path

import h5py
import numpy as np

from .atomic import atomic_output


def normalize(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


ILIAS_LAYOUT = {"compression": "gzip", "compression_opts": 0}  # h5py then chunks automatically


def write_feature_file(path, feats, ids, dtype="float16", **layout):
    """Write a feature file as ILIAS ``extract.py`` does: ``features`` (N x D,
    gzip level 0, h5py's automatic chunks unless ``layout`` gives other h5py
    dataset options) and ``index`` (variable-length ASCII strings)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    feats = np.asarray(feats, dtype=dtype)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as fh:
            fh.create_dataset("index", data=list(ids), dtype=h5py.string_dtype(encoding="ascii"))
            fh.create_dataset("features", data=feats, **(layout or ILIAS_LAYOUT))


def write_adapter(path, in_dim, out_dim, seed=0):
    """A random linear adaptation layer saved as the ILIAS state dict."""
    import torch  # here only: writing feature files must not load torch (features.to_float32 would take it)

    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((out_dim, in_dim)).astype(np.float32) / np.sqrt(in_dim)
    bias = 0.01 * rng.standard_normal(out_dim).astype(np.float32)
    with atomic_output(path) as tmp:
        torch.save({"layer.weight": torch.from_numpy(weight), "layer.bias": torch.from_numpy(bias)}, tmp)


def write_ground_truth(out, query_ids, text_ids, pos_ids, num_instances, rng):
    """ILIAS-style image_ids/ files (positives with a scale and clutter) and a taxonomy."""
    ids_dir = Path(out) / "image_ids"
    ids_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "image_query_ids.txt": [f"{q},synthetic" for q in query_ids],
        "text_query_ids.txt": list(text_ids),
        "positive_ids.txt": [f"{p},{rng.uniform(0.01, 0.5):.6f},{rng.integers(0, 80)}" for p in pos_ids],
    }
    for name, lines in files.items():
        with atomic_output(ids_dir / name) as tmp:
            tmp.write_text("".join(f"{line}\n" for line in lines))
    taxonomy = {}
    for inst in range(num_instances):  # 2 categories x 2 subcategories, one group each
        category, subcategory = f"category{inst % 2}", f"sub{(inst // 2) % 2}"
        taxonomy.setdefault(category, {}).setdefault(subcategory, {}).setdefault("group", []).append(f"inst{inst:04d}")
    with atomic_output(Path(out) / "taxonomy.json") as tmp:
        tmp.write_text(json.dumps(taxonomy, indent=1))
    return {"dataset_dir": str(out), "taxonomy": str(Path(out) / "taxonomy.json")}


def make_dataset(
    out_dir,
    num_instances=20,
    queries_per_instance=2,
    positives_per_instance=5,
    distractor_rows=(2000, 2000, 2000),
    dim=64,
    dtype="float16",
    noise=0.3,
    seed=0,
    adapter_out_dim=None,
    selected_fraction=0.5,
):
    """Write a small ILIAS-shaped dataset under ``out_dir``; returns the paths.

    Files: features_image_queries.hdf5, features_text_queries.hdf5 (one per
    instance, id = instance name), features_positives.hdf5,
    features_distractors_{idx}.hdf5 (one per entry of ``distractor_rows``),
    selected_ids.txt, image_ids/ and taxonomy.json (ground truth) and, with
    ``adapter_out_dim``, lin_adapt.pth.
    """
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    centers = normalize(rng.standard_normal((num_instances, dim)))

    def around(inst, count):
        return normalize(centers[inst] + noise * rng.standard_normal((count, dim)) / np.sqrt(dim) * 4)

    query_ids, queries = [], []
    text_ids, text_queries = [], []
    pos_ids, positives = [], []
    for inst in range(num_instances):
        name = f"inst{inst:04d}"
        queries.append(around(inst, queries_per_instance))
        query_ids += [f"{name}/query_{j}.jpg" for j in range(queries_per_instance)]
        text_queries.append(around(inst, 1))
        text_ids.append(name)
        positives.append(around(inst, positives_per_instance))
        pos_ids += [f"{name}/pos_{j}.jpg" for j in range(positives_per_instance)]
    paths = {
        "query_hdf5": out / "features_image_queries.hdf5",
        "text_query_hdf5": out / "features_text_queries.hdf5",
        "positive_hdf5": out / "features_positives.hdf5",
        "distractor_hdf5": out / "features_distractors_{idx}.hdf5",
        "selected_ids": out / "selected_ids.txt",
    }
    write_feature_file(paths["query_hdf5"], np.concatenate(queries), query_ids, dtype)
    write_feature_file(paths["text_query_hdf5"], np.concatenate(text_queries), text_ids, dtype)
    write_feature_file(paths["positive_hdf5"], np.concatenate(positives), pos_ids, dtype)
    selected = []
    offset = 0
    for idx, rows in enumerate(distractor_rows):
        feats = normalize(rng.standard_normal((rows, dim)))
        names = [f"{offset + r:09d}.jpg" for r in range(rows)]
        ids = [f"yfcc100m/{name}" for name in names]
        selected += [n for n in names if rng.random() < selected_fraction]
        path = str(paths["distractor_hdf5"]).replace("{idx}", f"{idx:05d}")
        write_feature_file(path, feats, ids, dtype)
        offset += rows
    with atomic_output(paths["selected_ids"]) as tmp:
        tmp.write_text("".join(f"{s}\n" for s in selected))
    paths.update(write_ground_truth(out, query_ids, text_ids, pos_ids, num_instances, rng))
    if adapter_out_dim:
        paths["lin_adapt_path"] = out / "lin_adapt.pth"
        write_adapter(paths["lin_adapt_path"], dim, adapter_out_dim, seed + 1)
    return {key: str(value) for key, value in paths.items()}
