"""HDF5 reading: blocks, ids, header checks and their messages."""

import h5py
import numpy as np
import pytest

from ilias_knn import features
from ilias_knn.demo import write_feature_file
from ilias_knn.errors import InputError


@pytest.fixture
def h5file(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((1000, 8)).astype(np.float16)
    ids = [f"src/{i:05d}" for i in range(1000)]
    path = tmp_path / "f.hdf5"
    write_feature_file(path, feats, ids, "float16", compression="gzip", chunks=(64, 8))
    return path, feats, np.array(ids)


def test_read_ids_at_reads_only_requested_rows(h5file):
    path, _, ids = h5file
    rows = np.array([0, 5, 511, 512, 999])
    with features.open_feature_file(path) as fh:
        got = features.read_ids_at(fh, rows, block_rows=100)
    assert got.dtype.kind == "S"
    assert got.astype(str).tolist() == ids[rows].tolist()


def test_vlen_string_ids_are_decoded(tmp_path):
    path = tmp_path / "v.hdf5"
    with h5py.File(path, "w") as fh:
        fh["features"] = np.ones((2, 3), np.float32)
        fh.create_dataset("index", data=["a/1", "b/2"], dtype=h5py.string_dtype())
    _, _, ids = features.read_all(path)
    assert ids.tolist() == ["a/1", "b/2"]
    with features.open_feature_file(path) as fh:
        assert features.read_ids_at(fh, np.array([1])).tolist() == [b"b/2"]


def make_bad(path, **datasets):
    with h5py.File(path, "w") as fh:
        for name, data in datasets.items():
            fh[name] = data


@pytest.mark.parametrize(
    "datasets,message",
    [
        ({"index": np.array([b"a"])}, "no 'features' dataset"),
        ({"features": np.ones((2, 3), np.float32)}, "no 'index' dataset"),
        ({"features": np.ones((3, 2), np.float32), "index": np.array([b"a", b"b"])}, "same length"),
        ({"features": np.ones(3, np.float32), "index": np.array([b"a", b"b", b"c"])}, "must be 2-D"),
        ({"features": np.ones((1, 2), np.int32), "index": np.array([b"a"])}, "expected float16 or float32"),
    ],
)
def test_bad_headers_are_named(tmp_path, datasets, message):
    path = tmp_path / "bad.hdf5"
    make_bad(path, **datasets)
    with pytest.raises(InputError, match=message) as err:
        features.describe(path)
    assert str(path) in str(err.value)


def test_missing_not_hdf5_and_truncated(tmp_path, h5file):
    with pytest.raises(InputError, match="does not exist"):
        features.describe(tmp_path / "nope.hdf5")
    text = tmp_path / "text.hdf5"
    text.write_text("hello")
    with pytest.raises(InputError, match="not an HDF5 file"):
        features.describe(text)
    path, _, _ = h5file
    data = path.read_bytes()
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt|not an HDF5"):
        with features.open_feature_file(cut) as fh:
            features.check_header(fh, cut)
            fh["features"][...]


def test_atomic_output_leaves_no_partial_file_on_error(tmp_path):
    from ilias_knn.atomic import atomic_output

    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OSError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("convert", ["to_float32", "float16_to_float32_torch", "float16_to_float32_faiss"])
@pytest.mark.parametrize("dim", [1, 7, 64])
def test_to_float32_decodes_every_float16_bit_exactly(dim, convert):
    """Each float16 converter (torch's, faiss's, and the one to_float32 picks)
    against numpy's cast, for all 65,536 bit patterns (subnormals, inf and NaN
    included), into a reused larger buffer."""
    values = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    values = np.resize(values, (-(-values.size // dim)) * dim).reshape(-1, dim)
    buffer = np.full(values.size + 5, 7.0, np.float32)
    target = buffer[: values.size].reshape(values.shape)
    got = (
        getattr(features, convert)(values, target)
        if convert != "to_float32"
        else features.to_float32(values, out=buffer)
    )
    expected = values.astype(np.float32)
    assert got.shape == values.shape and np.shares_memory(got, buffer)
    same = (got.view(np.uint32) == expected.view(np.uint32)) | (np.isnan(got) & np.isnan(expected))
    assert same.all()
    np.testing.assert_array_equal(features.to_float32(expected), expected)


@pytest.mark.parametrize("vlen", [False, True])
def test_non_ascii_ids_are_refused_with_the_file_named(tmp_path, vlen):
    path = tmp_path / "u.hdf5"
    with h5py.File(path, "w") as fh:
        fh["features"] = np.ones((2, 3), np.float32)
        if vlen:
            fh.create_dataset("index", data=["a/1", "caf\u00e9"], dtype=h5py.string_dtype())
        else:
            fh["index"] = np.array([b"a/1", "caf\u00e9".encode()], dtype="S5")
    with features.open_feature_file(path) as fh:
        with pytest.raises(InputError, match=r"u\.hdf5.*not ASCII"):
            features.read_ids_at(fh, np.array([1]))


def test_query_sets_need_rows_and_unique_ids(tmp_path):
    """Result files are keyed by query id: a repeated id within a set is refused
    (rows and count named); image and text sets may share ids (separate files)."""
    from ilias_knn.queries import read_model_queries

    x = np.eye(6, 8, dtype=np.float32)
    ids = ["a", "b", "c", "b", "d", "c"]
    write_feature_file(tmp_path / "dup.h5", x, ids, "float32")
    with pytest.raises(InputError, match=r"dup.h5: query id 'b' appears 2 times \(rows \[1, 3\]; 2 repeated"):
        read_model_queries(tmp_path / "dup.h5")
    write_feature_file(tmp_path / "image.h5", x, ["a", "b", "c", "d", "e", "f"], "float32")
    write_feature_file(tmp_path / "text.h5", x, ["a", "b", "c", "d", "e", "f"], "float32")
    queries = read_model_queries(tmp_path / "image.h5", tmp_path / "text.h5")
    assert queries.ids.tolist() == ["a", "b", "c", "d", "e", "f"] * 2
    write_feature_file(tmp_path / "none.h5", x[:0], [], "float32")
    with pytest.raises(InputError, match=r"none.h5: holds no queries \(0 rows\)"):
        read_model_queries(tmp_path / "image.h5", tmp_path / "none.h5")


def test_job_logs_hold_no_faiss_loader_lines(tmp_path):
    """faiss's loader reports a failed AVX2 import at INFO even where its one
    library uses AVX2: a job's log keeps the job's own lines only."""
    import subprocess
    import sys

    log = tmp_path / "job.log"
    script = (
        f"import logging; from ilias_knn.logs import setup_logging; setup_logging({str(log)!r}); "
        "import faiss; logging.getLogger('ilias_knn').info('own line')"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("INFO own line"), lines
