"""Results made elsewhere, read as ILIAS search.py writes them: each format's
content back exactly as the workflow's own writer wrote it, and each fault one
message naming the file."""

import json
import pickle

import numpy as np
import pytest

from ilias_knn.errors import InputError
from ilias_knn.formats import write_results
from ilias_knn.imported import check_results, read_results
from ilias_knn.merged_result import MergedResult


def merged_result(rng, queries=5, k=8, database=30):
    db_ids = np.array([f"inst{i % 3:04d}/db_{i}" for i in range(database)], dtype="S")
    ranks = np.array([rng.permutation(database)[:k] for _ in range(queries)], dtype=np.int64)
    sims = -np.sort(-rng.random((queries, k)).astype(np.float32), axis=1)
    query_ids = np.array([f"inst{q % 3:04d}/query_{q}" for q in range(queries)])
    return MergedResult(query_ids, db_ids, sims, ranks, {"query_sets": [["image", 0, queries]]}, np.arange(database))


@pytest.mark.parametrize("save_as", ["json", "pickle"])
def test_a_file_the_workflow_wrote_reads_back_as_the_same_results(tmp_path, save_as):
    merged = merged_result(np.random.default_rng(1))
    path = tmp_path / f"results.{'json' if save_as == 'json' else 'pkl'}"
    write_results(path, merged, save_as)
    back = read_results(path)
    assert back.query_ids.tolist() == merged.query_ids.tolist()
    np.testing.assert_array_equal(back.db_ids[back.ranks], merged.db_ids[merged.ranks])
    np.testing.assert_array_equal(back.sims, merged.sims)


def test_json_lists_of_different_lengths_are_cut_to_the_shortest(tmp_path):
    data = {"a/q0": {"a/x": 0.9, "a/y": 0.8, "a/z": 0.7}, "a/q1": {"a/y": 0.5, "a/x": 0.4}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    back = read_results(path)
    assert back.sims.shape == (2, 2)
    assert back.db_ids[back.ranks].astype(str).tolist() == [["a/x", "a/y"], ["a/y", "a/x"]]


@pytest.mark.parametrize(
    "content,message",
    [
        (b"{not json", "not a JSON results file"),
        (json.dumps({"a/q0": [1, 2]}).encode(), "expected {query id: {database id: score, ...}, ...}"),
        (pickle.dumps({"query_ids": ["a/q0"]}), "the pickle has no db_ids, sims, ranks"),
        (
            pickle.dumps(
                {"query_ids": ["a/q0"], "db_ids": ["a/x"], "sims": np.ones((1, 2)), "ranks": np.array([[0, 1]])}
            ),
            "ranks must be indices into db_ids (0 to 0)",
        ),
        (b"\x00\x01garbage", "neither a JSON nor a pickle results file"),
    ],
)
def test_a_malformed_file_is_one_message_naming_it(tmp_path, content, message):
    path = tmp_path / "r.pkl"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"r\.pkl: ") as err:
        read_results(path)
    assert message in str(err.value)


def test_a_database_id_twice_in_one_list_is_refused(tmp_path):
    merged = merged_result(np.random.default_rng(2))
    merged.ranks[1, 3] = merged.ranks[1, 0]
    with pytest.raises(InputError, match="a database id appears twice in one query's list"):
        check_results(merged, "r.pkl", ground_truth_of(merged), tmp_path, "image", 4)


def ground_truth_of(merged):
    from ilias_knn.evaluation import GroundTruth, instance_of

    ids = np.sort(merged.db_ids.astype(str))
    instances = instance_of(ids)
    names, counts = np.unique(instances, return_counts=True)
    return GroundTruth(ids, instances, np.zeros(len(ids)), np.zeros(len(ids)), dict(zip(names, counts)), {}, None, None)
