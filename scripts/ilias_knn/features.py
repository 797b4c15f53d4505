"""Reading ILIAS feature files: HDF5 with ``features`` (N x D) and ``index`` (N ids).

Only headers are read to validate; features are streamed in row blocks
(block_reader.py) so that memory does not grow with the file's row count.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .arrays import ascii_ids
from .errors import InputError


@dataclass(frozen=True)
class FeatureInfo:
    path: str
    rows: int
    dim: int
    dtype: np.dtype
    chunk_rows: int | None  # HDF5 chunk height, to align reads


def open_feature_file(path):
    """Open an HDF5 feature file for reading, with a clear error if that fails."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: file does not exist. Check the path in the config.")
    if not p.is_file():
        raise InputError(f"{path}: not a regular file. Point the config at an HDF5 file.")
    try:
        is_hdf5 = h5py.is_hdf5(str(p))
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc}). Check its permissions.") from exc
    if not is_hdf5:
        raise InputError(f"{path}: not an HDF5 file. Features must be HDF5 with 'features' and 'index' datasets.")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise InputError(f"{path}: HDF5 file is truncated or corrupt ({exc}). Re-copy or re-extract it.") from exc


def check_header(handle, path):
    """Validate the datasets of an open feature file from its header alone."""
    for name in ("features", "index"):
        if name not in handle or not isinstance(handle[name], h5py.Dataset):
            raise InputError(
                f"{path}: no '{name}' dataset (found: {sorted(handle.keys())}). "
                "ILIAS feature files hold 'features' (N x D) and 'index' (N ids)."
            )
    feats, index = handle["features"], handle["index"]
    if feats.ndim != 2:
        raise InputError(f"{path}: 'features' must be 2-D (N x D), found shape {feats.shape}.")
    if not np.issubdtype(feats.dtype, np.floating):
        raise InputError(f"{path}: 'features' has dtype {feats.dtype}; expected float16 or float32.")
    if index.ndim != 1 or index.shape[0] != feats.shape[0]:
        raise InputError(
            f"{path}: 'index' has {index.shape[0] if index.ndim else 0} entries but 'features' "
            f"has {feats.shape[0]} rows; they must have the same length."
        )
    chunks = feats.chunks
    return FeatureInfo(
        path=str(path),
        rows=int(feats.shape[0]),
        dim=int(feats.shape[1]),
        dtype=feats.dtype,
        chunk_rows=int(chunks[0]) if chunks else None,
    )


def check_database_dim(path, dim, query_dim, query_path=None):
    """Database rows (``dim``, after any adapter) must have the queries' dimension."""
    if dim != query_dim:
        queries = f" ({query_path})" if query_path else ""
        raise InputError(
            f"{path}: database vectors are {dim}-d but the queries are {query_dim}-d{queries}. "
            "Queries and database must come from the same model (and the same adapter)."
        )


def describe(path):
    """Header facts of a feature file (opens it only long enough to read them)."""
    with open_feature_file(path) as handle:
        return check_header(handle, path)


def decode_ids(raw, path=""):
    """HDF5 ids (bytes, fixed-length or variable-length strings) as a numpy str
    array; ids that are not ASCII are refused naming ``path`` (arrays.ascii_ids)."""
    return ascii_ids(raw, path).astype(str)


def read_ids(path):
    """All ids of a (small) feature file, as a numpy str array. For queries."""
    with open_feature_file(path) as handle:
        check_header(handle, path)
        return decode_ids(handle["index"][...], path)


def read_all(path):
    """Read a whole (small) feature file: float32 features and str ids. For queries."""
    with open_feature_file(path) as handle:
        info = check_header(handle, path)
        feats = np.asarray(handle["features"][...], dtype=np.float32)
        ids = decode_ids(handle["index"][...], path)
    check_finite(feats, path, first_row=0)
    return info, feats, ids


def zero_rows(block):
    """Row numbers of ``block``'s rows that are all zero. Cheap: only rows whose
    first two values are zero (two strided column reads) are looked at whole."""
    if block.shape[0] == 0 or block.shape[1] == 0:
        return np.empty(0, dtype=np.int64)
    candidates = np.flatnonzero((block[:, 0] == 0) & (block[:, min(1, block.shape[1] - 1)] == 0))
    if candidates.size == 0:
        return candidates.astype(np.int64)
    return candidates[~np.any(block[candidates] != 0, axis=1)].astype(np.int64)


def nonfinite_error(path, count, first_rows):
    return InputError(
        f"{path}: {count} row(s) of 'features' contain NaN or inf (first at rows "
        f"{list(first_rows)}). Re-extract those features or remove the rows."
    )


def check_finite(block, path, first_row):
    """Raise if a block holds NaN/inf rows, naming how many and where."""
    bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
    if bad.size:
        raise nonfinite_error(path, bad.size, (bad[:5] + first_row).tolist())


def corrupt_error(path, where, exc):
    return InputError(
        f"{path}: cannot read {where} of 'features' ({exc}): the file is truncated or corrupt. "
        "Re-copy or re-extract it; finished shards of other files are kept."
    )


def block_rows_for(info, target_rows):
    """Block height: ``target_rows`` rounded to whole HDF5 chunks (each chunk read once)."""
    rows = max(1, int(target_rows))
    if info.chunk_rows and info.chunk_rows < rows:
        rows -= rows % info.chunk_rows
    elif info.chunk_rows:
        rows = info.chunk_rows
    return rows


_FP16_DECODERS = {}  # dim -> faiss.ScalarQuantizer


def to_float32(block, out=None):
    """float32 copy of a float16 or float32 block, into ``out`` when given (a
    reused buffer of at least as many elements). float16 is converted by torch
    where torch is imported already (the bf16 and GPU scorers, adapters): its
    F16C conversion is about 4x faiss's, but importing torch for it alone
    would cost a job more than it saves. Otherwise by faiss's scalar quantizer
    (faster than numpy's cast). Both are bit-exact for all 65,536 values."""
    rows, dim = block.shape
    out = np.empty((rows, dim), np.float32) if out is None else out.reshape(-1)[: rows * dim].reshape(rows, dim)
    if block.dtype != np.float16 or rows == 0:
        np.copyto(out, block, casting="unsafe")
        return out
    if converts_with_torch():
        return float16_to_float32_torch(block, out)
    return float16_to_float32_faiss(block, out)


def converts_with_torch():
    """Whether to_float32 converts float16 with torch: where it is imported already."""
    return "torch" in sys.modules


def float16_to_float32_torch(block, out):
    import torch

    torch.from_numpy(out).copy_(torch.from_numpy(block))
    return out


def float16_to_float32_faiss(block, out):
    import faiss

    rows, dim = block.shape
    decoder = _FP16_DECODERS.get(dim)
    if decoder is None:
        decoder = _FP16_DECODERS[dim] = faiss.ScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16)
    codes = np.ascontiguousarray(block).view(np.uint8)
    decoder.decode_c(faiss.swig_ptr(codes), faiss.swig_ptr(out), rows)
    return out


def iter_id_blocks(handle, block_rows):
    """Yield (first_row, str ids) over ``index`` in row order."""
    index = handle["index"]
    for start in range(0, index.shape[0], block_rows):
        yield start, decode_ids(index[start : start + block_rows], handle.filename)


def check_ids_ascii(handle, path, block_rows=1 << 18):
    """Refuse a file whose ids are not ASCII before any scoring (a pass over
    ``index`` in blocks: milliseconds for fixed-width ids)."""
    index = handle["index"]
    for start in range(0, index.shape[0], block_rows):
        ascii_ids(index[start : start + block_rows], path)


def read_ids_at(handle, rows, block_rows=1 << 18):
    """Ids (ascii bytes) of the given sorted unique rows, read block by block
    (no whole-index load)."""
    rows = np.asarray(rows, dtype=np.int64)
    index = handle["index"]
    n = index.shape[0]
    pieces = []
    for start in range(0, n, block_rows):
        lo, hi = np.searchsorted(rows, [start, start + block_rows])
        if lo == hi:
            continue
        block = ascii_ids(index[start : min(start + block_rows, n)], handle.filename)
        pieces.append(block[rows[lo:hi] - start])
    return np.concatenate(pieces) if pieces else np.empty(0, dtype="S1")
