"""The parallel chunk decoder against h5py's own read: bit for bit, for every
layout it decodes, the ones it leaves to h5py, and damaged files."""

import h5py
import numpy as np
import pytest

from ilias_knn.block_reader import ChunkDecoder, ChunkLayout, H5pyReader, ReadError, block_reader
from ilias_knn.demo import write_feature_file


def write(path, feats, **dataset_options):
    with h5py.File(path, "w", **dataset_options.pop("file_options", {})) as fh:
        fh.create_dataset("features", data=feats, **dataset_options)
    return path


def read_all(reader, rows, dim, dtype, block_rows, first=0):
    out = []
    for start in range(first, rows, block_rows):
        stop = min(rows, start + block_rows)
        block = np.full((stop - start, dim), 7, dtype)  # garbage where nothing is written
        reader.read(start, stop, block)
        out.append(block)
    return np.concatenate(out)


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.view(np.uint8).tobytes() == b.view(np.uint8).tobytes()


LAYOUTS = {
    # what ILIAS extract.py writes: gzip level 0, h5py's automatic chunks
    "ilias_auto_level0": dict(compression="gzip", compression_opts=0),
    "gzip4": dict(compression="gzip", compression_opts=4, chunks=(100, 8)),
    "chunks_not_dividing": dict(compression="gzip", compression_opts=1, chunks=(77, 13)),
    "shuffle_gzip": dict(compression="gzip", shuffle=True, chunks=(64, 16)),
    "shuffle_only": dict(shuffle=True, chunks=(50, 40)),
    "chunked_unfiltered": dict(chunks=(128, 40)),
    "one_chunk_larger_than_data": dict(compression="gzip", chunks=(4096, 64), maxshape=(None, None)),
}


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("threads", [1, 3])
def test_decoder_reads_exactly_what_h5py_reads(tmp_path, layout, dtype, threads):
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((1001, 40)).astype(dtype)  # rows and columns no chunk divides
    feats[5, 3] = np.inf  # odd values pass through untouched
    feats[6, 4] = -0.0
    path = write(tmp_path / "f.h5", feats, **LAYOUTS[layout])
    with h5py.File(path, "r") as fh:
        dataset = fh["features"]
        reader = block_reader(path, dataset, threads=threads)
        assert isinstance(reader, ChunkDecoder), reader
        for block_rows, first in ((1001, 0), (300, 0), (64, 0), (250, 13)):  # aligned or not
            assert same_bits(read_all(reader, 1001, 40, dataset.dtype, block_rows, first), feats[first:])
        reader.close()


def test_real_format_file_decodes_in_parallel(tmp_path):
    """The demo and test data are written as ILIAS writes them."""
    feats = np.random.default_rng(1).standard_normal((20000, 64)).astype(np.float16)
    path = tmp_path / "ilias.h5"
    write_feature_file(path, feats, [f"yfcc100m/{i}" for i in range(20000)])
    with h5py.File(path, "r") as fh:
        dataset = fh["features"]
        assert dataset.compression == "gzip" and dataset.compression_opts == 0
        assert h5py.check_string_dtype(fh["index"].dtype).encoding == "ascii"
        reader = block_reader(path, dataset, threads=2)
        assert isinstance(reader, ChunkDecoder)
        assert same_bits(read_all(reader, 20000, 64, dataset.dtype, dataset.chunks[0] * 2), feats)
        reader.close()


@pytest.mark.parametrize(
    "options,why",
    [
        (dict(), "not a 2-D chunked dataset"),  # contiguous
        (dict(compression="lzf", chunks=(64, 8)), "HDF5 filters"),
        (dict(compression="gzip", fletcher32=True, chunks=(64, 8)), "HDF5 filters"),
    ],
)
def test_other_layouts_and_filters_are_read_by_h5py(tmp_path, options, why):
    feats = np.random.default_rng(2).standard_normal((500, 24)).astype(np.float32)
    path = write(tmp_path / "f.h5", feats, **options)
    with h5py.File(path, "r") as fh:
        layout, reason = ChunkLayout.of(fh["features"])
        assert layout is None and why in reason
        reader = block_reader(path, fh["features"])
        assert isinstance(reader, H5pyReader)
        assert same_bits(read_all(reader, 500, 24, np.float32, 128), feats)


def test_unwritten_chunks_are_read_by_h5py(tmp_path):
    path = tmp_path / "sparse.h5"
    with h5py.File(path, "w") as fh:
        dataset = fh.create_dataset(
            "features", shape=(300, 16), dtype=np.float32, chunks=(100, 16), compression="gzip", fillvalue=0.5
        )
        dataset[:100] = 1.0  # the other chunks are never written
    with h5py.File(path, "r") as fh:
        assert "never written" in ChunkLayout.of(fh["features"])[1]
        reader = block_reader(path, fh["features"])
        got = read_all(reader, 300, 16, np.float32, 64)
    np.testing.assert_array_equal(got[:100], 1.0)
    np.testing.assert_array_equal(got[100:], 0.5)


def test_file_with_a_userblock_reads_the_same(tmp_path):
    """Chunk offsets from HDF5 with a user block before the data: the decoder
    either reads them right or its first-block check hands the file to h5py."""
    feats = np.random.default_rng(3).standard_normal((800, 32)).astype(np.float16)
    path = write(tmp_path / "u.h5", feats, compression="gzip", chunks=(100, 8), file_options={"userblock_size": 1024})
    with h5py.File(path, "r") as fh:
        reader = block_reader(path, fh["features"], threads=2)
        assert same_bits(read_all(reader, 800, 32, np.float16, 200), feats)
        reader.close()


def test_features_behind_an_external_link_are_decoded_from_the_linked_file(tmp_path):
    """'features' may be an external link into another file: its chunks are at
    offsets of that file, which the decoder reads (not the linking file)."""
    feats = np.random.default_rng(5).standard_normal((900, 24)).astype(np.float16)
    target = tmp_path / "target.h5"
    with h5py.File(target, "w") as fh:
        fh["padding"] = np.zeros((4000, 64), np.float32)  # the chunks lie far into this file
        fh.create_dataset("features", data=feats, compression="gzip", compression_opts=0)
    linking = tmp_path / "linking.h5"
    with h5py.File(linking, "w") as fh:
        fh["features"] = h5py.ExternalLink(str(target), "/features")
    with h5py.File(linking, "r") as fh:
        reader = block_reader(linking, fh["features"], threads=2)
        assert isinstance(reader, ChunkDecoder), reader
        assert same_bits(read_all(reader, 900, 24, np.float16, 300), feats)
        reader.close()


def chunk_layout(path):
    with h5py.File(path, "r") as fh:
        return ChunkLayout.of(fh["features"])[0]


def test_damaged_chunk_is_a_read_error(tmp_path):
    feats = np.random.default_rng(4).standard_normal((1000, 16)).astype(np.float32)
    path = write(tmp_path / "d.h5", feats, compression="gzip", compression_opts=6, chunks=(100, 16))
    layout = chunk_layout(path)
    chunk = layout.chunks[(500, 0)]
    data = bytearray(path.read_bytes())
    data[chunk.offset + 20 : chunk.offset + 40] = b"\xff" * 20
    path.write_bytes(bytes(data))
    decoder = ChunkDecoder(path, layout, threads=2)
    decoder.read(0, 100, np.empty((100, 16), np.float32))  # the chunks before are fine
    with pytest.raises(ReadError, match="row 500"):
        decoder.read(500, 600, np.empty((100, 16), np.float32))
    decoder.close()


def test_truncated_file_is_a_read_error(tmp_path):
    feats = np.random.default_rng(5).standard_normal((4000, 16)).astype(np.float32)
    path = write(tmp_path / "t.h5", feats, compression="gzip", compression_opts=0, chunks=(500, 16))
    layout = chunk_layout(path)
    last = max(layout.chunks.values(), key=lambda c: c.offset)
    path.write_bytes(path.read_bytes()[: last.offset + 10])
    decoder = ChunkDecoder(path, layout)
    with pytest.raises(ReadError):
        read_all(decoder, 4000, 16, np.float32, 500)
    decoder.close()
