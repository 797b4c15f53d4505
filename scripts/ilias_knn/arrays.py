"""Small array helpers."""

import numpy as np


def sorted_unique(values):
    """Sorted unique values of an integer array. np.unique's default (hash-based
    in numpy 2.4) took 1.5 s on 2,000 x 1,000 row numbers here; a sort takes 0.04 s."""
    flat = np.sort(np.asarray(values).ravel())
    if flat.size == 0:
        return flat
    return flat[np.r_[True, flat[1:] != flat[:-1]]]


def unique_inverse(values):
    """(sorted unique values, index of each value in them, shaped like values),
    from one argsort: 0.45-0.59 s against 0.74-0.81 s for sorted_unique +
    searchsorted on 2,000 x 1,000 positions here."""
    values = np.asarray(values)
    flat = values.ravel()
    order = np.argsort(flat)
    ordered = flat[order]
    starts = np.empty(flat.size, dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    inverse = np.empty(flat.size, dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return ordered[starts], inverse.reshape(values.shape)
