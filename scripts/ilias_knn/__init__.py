"""Exact sharded k-nearest-neighbour search over HDF5 embeddings (ILIAS).

Small modules with one job each: ``features`` (HDF5 reading and checks),
``adapter`` (linear adaptation layer), ``selection`` (mini-ILIAS id filter),
``topk`` (exact running top-k), ``search`` (one shard), ``partials``
(partial result files), ``merge``, ``formats`` (ILIAS outputs), ``demo``
(synthetic data).
"""

__version__ = "0.1.0"
