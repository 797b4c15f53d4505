"""Small array helpers."""

import numpy as np


def sorted_unique(values):
    """Sorted unique values of an integer array. np.unique's default (hash-based
    in numpy 2.4) took 1.5 s on 2,000 x 1,000 row numbers here; a sort takes 0.04 s."""
    flat = np.sort(np.asarray(values).ravel())
    if flat.size == 0:
        return flat
    return flat[np.r_[True, flat[1:] != flat[:-1]]]
