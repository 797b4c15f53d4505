"""Small array helpers."""

import numpy as np

from .errors import InputError


def sorted_unique(values, bound=None):
    """Sorted unique values of a non-negative integer array: with ``bound`` (all
    values < bound) not much larger than the array, one pass over a bound-sized
    mask; otherwise a sort (numpy 2's default np.unique hashes, far slower on
    millions of row numbers)."""
    flat = np.asarray(values).ravel()
    if bound is not None and 0 < bound <= 16 * flat.size:
        seen = np.zeros(bound, dtype=bool)
        seen[flat] = True
        return np.flatnonzero(seen).astype(flat.dtype, copy=False)
    flat = np.sort(flat)
    if flat.size == 0:
        return flat
    return flat[np.r_[True, flat[1:] != flat[:-1]]]


class ReusedBuffer:
    """One flat buffer, grown when needed, handed out as arrays of the shape
    asked for: per-block arrays reuse memory instead of faulting in fresh pages."""

    def __init__(self, dtype):
        self._flat = np.empty(0, dtype=dtype)

    def view(self, shape):
        size = int(np.prod(shape))
        if self._flat.size < size:
            self._flat = np.empty(size, dtype=self._flat.dtype)
        return self._flat[:size].reshape(shape)


def unique_inverse(values, bound=None):
    """(sorted unique values, index of each value in them, shaped like values) of
    a non-negative integer array. With ``bound`` (all values < bound) at most 4x
    the array's size: a bound-sized mask and its running count. Otherwise value
    and index share one uint64 sort key when they fit (numpy's SIMD sort beats
    an argsort, the last fallback)."""
    values = np.asarray(values)
    flat = values.ravel()
    if bound is not None and 0 < bound <= 4 * flat.size:
        seen = np.zeros(bound, dtype=bool)
        seen[flat] = True
        rank = np.cumsum(seen, dtype=np.int32 if bound < 2**31 else np.int64)
        rank -= 1
        return np.flatnonzero(seen).astype(flat.dtype, copy=False), rank[flat].astype(np.int64).reshape(values.shape)
    index_bits = max(1, int(flat.size - 1).bit_length())
    if flat.size and flat.min() >= 0 and int(flat.max()) < (1 << (64 - index_bits)):
        keys = flat.astype(np.uint64) << np.uint64(index_bits)
        keys |= np.arange(flat.size, dtype=np.uint64)
        keys.sort()
        order = (keys & np.uint64((1 << index_bits) - 1)).astype(np.int64)
        ordered = (keys >> np.uint64(index_bits)).astype(flat.dtype)
    else:
        order = np.argsort(flat)
        ordered = flat[order]
    starts = np.empty(flat.size, dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    inverse = np.empty(flat.size, dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return ordered[starts], inverse.reshape(values.shape)


def repeated_values(values):
    """The values of a fixed-width bytes array (numpy "S") that occur more than
    once. Each value is hashed to a uint64 (its 8-byte words, FNV-style), the
    hashes are sorted, and only values whose hashes repeat are compared exactly
    (cheaper than sorting the strings)."""
    values = np.ascontiguousarray(values)
    if values.dtype.kind != "S":
        values = np.char.encode(values.astype(str), "utf-8")
    width = values.dtype.itemsize
    padded = np.zeros((values.size, -(-width // 8) * 8), dtype=np.uint8)
    padded[:, :width] = values.view(np.uint8).reshape(values.size, width)
    hashes = np.full(values.size, 14695981039346656037, dtype=np.uint64)
    for word in padded.view(np.uint64).T:
        hashes ^= word
        hashes *= np.uint64(1099511628211)
    ordered = np.sort(hashes)
    clashing = ordered[1:][ordered[1:] == ordered[:-1]]
    if clashing.size == 0:
        return values[:0]
    maybe = np.sort(values[np.isin(hashes, clashing)])
    return np.unique(maybe[1:][maybe[1:] == maybe[:-1]])


def ascii_ids(raw, path=""):
    """Ids (fixed-width or variable-length bytes, or str) as a fixed-width bytes
    array (numpy "S"): HDF5 ids as they are stored, so partials keep them as
    bytes with no bytes -> str -> bytes round trip. ``path`` names the file in
    the error for ids that are not ASCII."""
    raw = np.ascontiguousarray(raw)
    not_ascii = InputError(
        f"{path}: 'index' holds ids that are not ASCII. ILIAS ids are ASCII strings: write the index with ASCII ids."
    )
    try:
        if raw.dtype.kind == "O":  # variable-length strings
            raw = np.array([x if isinstance(x, bytes) else str(x).encode("ascii") for x in raw], dtype="S")
        elif raw.dtype.kind != "S":
            raw = np.char.encode(raw.astype(str), "ascii")
    except UnicodeError:
        raise not_ascii from None
    ids = raw.view(f"S{raw.dtype.itemsize}")  # without h5py's dtype metadata (npz warns)
    if ids.size and int(ids.view(np.uint8).max()) > 127:
        raise not_ascii
    return ids
