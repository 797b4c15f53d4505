"""Rows of a feature file in row-major blocks, decoded in parallel where HDF5 would not.

h5py serialises every call behind one lock, and HDF5 decodes a chunked,
filtered dataset one chunk at a time. ILIAS feature files are exactly that
(``extract.py`` writes gzip level 0, so h5py chunks them automatically: 7,813
rows x 8 columns for 1,000,000 x 1,024 float16). For deflate and shuffle
filtered chunks, ``ChunkDecoder`` reads the raw chunks itself (their file
offsets come from h5py's chunk index), inflates them with zlib-ng in worker
threads (both release the GIL) and writes each into its columns of the block.
Any other layout or filter, and a file whose first block does not decode to
exactly what h5py reads, is read by h5py (``H5pyReader``).
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import h5py
import numpy as np
from zlib_ng import zlib_ng

log = logging.getLogger(__name__)

DEFLATE, SHUFFLE = h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE


class ReadError(OSError):
    """A block could not be read (the file is cut short or damaged)."""


@dataclass(frozen=True)
class Chunk:
    offset: int  # in the file
    size: int  # stored (filtered) bytes
    skipped_filters: int  # HDF5 filter mask: bit i set = filter i not applied


@dataclass(frozen=True)
class ChunkLayout:
    """What ChunkDecoder needs of a dataset: chunk shape, filters, chunk index."""

    shape: tuple  # dataset (rows, columns)
    chunk_shape: tuple
    dtype: np.dtype
    filters: tuple  # filter ids in pipeline (write) order
    chunks: dict  # (first row, first column) -> Chunk

    @classmethod
    def of(cls, dataset):
        """The layout, or (None, why) when ChunkDecoder cannot decode it."""
        if dataset.chunks is None or dataset.ndim != 2:
            return None, "not a 2-D chunked dataset"
        if not dataset.dtype.isnative or dataset.dtype.kind != "f":
            return None, f"dtype {dataset.dtype}"
        plist = dataset.id.get_create_plist()
        filters = tuple(plist.get_filter(i)[0] for i in range(plist.get_nfilters()))
        if not set(filters) <= {DEFLATE, SHUFFLE}:
            return None, f"HDF5 filters {filters} (only deflate and shuffle are decoded here)"
        chunks = {}

        def visit(info):
            chunks[tuple(info.chunk_offset)] = Chunk(info.byte_offset, info.size, info.filter_mask)

        dataset.id.chunk_iter(visit)
        rows, cols = dataset.shape
        chunk_rows, chunk_cols = dataset.chunks
        expected = -(-rows // chunk_rows) * -(-cols // chunk_cols)
        if len(chunks) != expected:
            return None, f"{expected - len(chunks)} chunks never written (fill values)"
        return cls(dataset.shape, dataset.chunks, dataset.dtype, filters, chunks), None


class H5pyReader:
    """Blocks through h5py's own read (HDF5 decodes; one call at a time)."""

    name = "h5py"

    def __init__(self, dataset):
        self.dataset = dataset

    def read(self, start, stop, out):
        try:
            self.dataset.read_direct(out, source_sel=np.s_[start:stop], dest_sel=np.s_[0 : stop - start])
        except OSError as exc:
            raise ReadError(f"rows {start}-{stop}: {exc}") from exc

    def close(self):
        pass


class ChunkDecoder:
    """Blocks of a deflate/shuffle-chunked dataset, decoded by ``threads`` workers.

    A block's column chunks are split into ``threads`` contiguous groups, one
    task each: a worker writes only its own columns, and consecutive chunks of
    a group fill the same rows of the block while they are still in cache.
    """

    def __init__(self, path, layout, threads=1):
        self.layout = layout
        self.threads = max(1, int(threads))
        self.name = f"chunk decoder, {self.threads} thread(s)"
        self._fd = os.open(path, os.O_RDONLY)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="chunk-decoder")
        chunk_rows, chunk_cols = layout.chunk_shape
        itemsize = layout.dtype.itemsize
        self._unit = np.dtype((np.void, chunk_cols * itemsize))  # one chunk row as one element
        self._chunk_bytes = chunk_rows * chunk_cols * itemsize
        col_starts = list(range(0, layout.shape[1], chunk_cols))
        bounds = np.linspace(0, len(col_starts), min(self.threads, len(col_starts)) + 1).astype(int)
        self._column_groups = [col_starts[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def read(self, start, stop, out):
        """Rows [start, stop) into ``out`` (at least stop - start rows, row-major)."""
        tasks = [self._pool.submit(self._read_columns, start, stop, out, cols) for cols in self._column_groups]
        for task in tasks:
            task.result()

    def _read_columns(self, start, stop, out, col_starts):
        chunk_rows, chunk_cols = self.layout.chunk_shape
        total_cols = self.layout.shape[1]
        first = start - start % chunk_rows
        for row0 in range(first, stop, chunk_rows):
            lo, hi = max(start, row0), min(stop, row0 + chunk_rows)  # rows of this chunk in the block
            for col0 in col_starts:
                chunk = self._decode(row0, col0)[lo - row0 : hi - row0]
                width = min(chunk_cols, total_cols - col0)
                target = out[lo - start : hi - start, col0 : col0 + width]
                if width == chunk_cols:  # whole chunk rows: one strided copy of fixed-size units
                    target.view(self._unit)[:, 0] = chunk.view(self._unit)[:, 0]
                else:  # the last column chunk, cut at the dataset's edge
                    target[...] = chunk[:, :width]

    def _decode(self, row0, col0):
        """One chunk as a (chunk rows x chunk columns) array."""
        info = self.layout.chunks[(row0, col0)]
        data = os.pread(self._fd, info.size, info.offset)
        if len(data) != info.size:
            raise ReadError(f"chunk at row {row0}, column {col0}: file ends {info.size - len(data)} bytes early")
        for bit, filter_id in reversed(list(enumerate(self.layout.filters))):
            if info.skipped_filters & (1 << bit):
                continue
            if filter_id == DEFLATE:
                try:
                    data = zlib_ng.decompress(data, bufsize=self._chunk_bytes)  # one allocation, no regrowth
                except zlib_ng.error as exc:
                    raise ReadError(f"chunk at row {row0}, column {col0}: {exc}") from exc
            else:  # SHUFFLE: byte k of every element stored together; interleave them back
                itemsize = self.layout.dtype.itemsize
                planes = np.frombuffer(data, np.uint8).reshape(itemsize, -1)
                data = np.ascontiguousarray(planes.T).tobytes()
        if len(data) != self._chunk_bytes:
            raise ReadError(f"chunk at row {row0}, column {col0}: {len(data)} bytes, expected {self._chunk_bytes}")
        return np.frombuffer(data, self.layout.dtype).reshape(self.layout.chunk_shape)

    def close(self):
        self._pool.shutdown()
        os.close(self._fd)


def block_reader(path, dataset, threads=1, check_rows=None):
    """The fastest exact reader of ``dataset``: ChunkDecoder where it decodes
    the dataset, else h5py. ``check_rows``: the first rows are read both ways
    and must agree bit for bit (a chunk index or filter it misreads falls back
    to h5py instead of giving other numbers)."""
    layout, why = ChunkLayout.of(dataset)
    if layout is None:
        log.info("%s: read by h5py (%s)", path, why)
        return H5pyReader(dataset)
    # the file holding the chunks: another one where 'features' is an external link
    decoder = ChunkDecoder(dataset.file.filename, layout, threads)
    rows = min(dataset.shape[0], check_rows or layout.chunk_shape[0])
    if rows:
        ours = np.empty((rows, dataset.shape[1]), dataset.dtype)
        theirs = np.empty_like(ours)
        try:
            decoder.read(0, rows, ours)
        except ReadError as exc:
            log.warning("%s: the chunk decoder failed on the first rows (%s); reading with h5py", path, exc)
            decoder.close()
            return H5pyReader(dataset)
        H5pyReader(dataset).read(0, rows, theirs)
        if ours.view(np.uint8).tobytes() != theirs.view(np.uint8).tobytes():
            log.warning("%s: the chunk decoder disagrees with h5py on the first rows; reading with h5py", path)
            decoder.close()
            return H5pyReader(dataset)
    return decoder
