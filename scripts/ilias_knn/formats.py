"""ILIAS result formats, as read by the ILIAS evaluation script.

- JSON: {query_id: {db_id: score, ...}, ...}, each query's entries in rank order.
- pickle: {"query_ids", "db_ids", "sims", "ranks"}; ranks index into db_ids.
"""

import pickle

import numpy as np
import orjson

from .atomic import atomic_output


def to_json_dict(merged):
    ids = merged.db_ids.astype(str)
    return {
        qid: dict(zip(ids[ranks].tolist(), sims.tolist()))
        for qid, sims, ranks in zip(merged.query_ids.tolist(), merged.sims, merged.ranks)
    }


def write_json(path, merged):
    payload = orjson.dumps(to_json_dict(merged))
    with atomic_output(path) as tmp:
        tmp.write_bytes(payload)


def write_pickle(path, merged):
    results = {
        "query_ids": np.asarray(merged.query_ids, dtype=str),
        "db_ids": np.asarray(merged.db_ids, dtype=str),
        "sims": np.asarray(merged.sims, dtype=np.float32),
        "ranks": np.asarray(merged.ranks, dtype=np.int64),
    }
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump(results, fh, protocol=pickle.HIGHEST_PROTOCOL)


WRITERS = {"json": write_json, "pickle": write_pickle}


def write_results(path, merged, save_as):
    WRITERS[save_as](path, merged)
