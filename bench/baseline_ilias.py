"""The reference approach of ILIAS knn_search/search.py, for comparison only:
each file loaded whole, converted to float32, faiss.knn, faiss.ResultHeap."""

import argparse
import time

import faiss
import h5py
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--query_hdf5", required=True)
    parser.add_argument("--db_hdf5", nargs="+", required=True, help="positives, then distractor files")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--out", required=True, help=".npz with D (scores) and I (global positions)")
    args = parser.parse_args()
    with h5py.File(args.query_hdf5, "r") as fh:
        queries = fh["features"][...].astype(np.float32)
    heap = faiss.ResultHeap(queries.shape[0], args.k, keep_max=True)
    offset = 0
    t0 = time.perf_counter()
    for path in args.db_hdf5:
        with h5py.File(path, "r") as fh:
            feats = fh["features"][...].astype(np.float32)
        dist, idx = faiss.knn(queries, feats, args.k, metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(dist, idx + offset)
        offset += feats.shape[0]
        del feats
    heap.finalize()
    print(f"baseline search: {time.perf_counter() - t0:.1f} s")
    np.savez(args.out, D=heap.D, I=heap.I)


if __name__ == "__main__":
    main()
