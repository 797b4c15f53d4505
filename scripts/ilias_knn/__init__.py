"""Exact sharded k-nearest-neighbour search over HDF5 embeddings (ILIAS).

Small modules with one job each: ``features`` (HDF5 reading and checks),
``queries`` (query sets), ``adapter`` (linear adaptation layer), ``selection``
(mini-ILIAS id filter), ``reservoir_topk`` (CPU top-k by sortable keys),
``topk`` and ``scoring`` (torch engine, bf16 bound), ``search`` (one shard),
``partials`` (partial result files), ``merge`` and ``merged`` (merged top-k),
``expansion`` (query expansion), ``formats`` (ILIAS outputs), ``evaluation``,
``scale_curve``, ``plots`` and ``summary`` (ILIAS mAP), ``validate`` (checks
before any job), ``cli`` (drop-in for the ILIAS search.py), ``demo``
(synthetic data).
"""

__version__ = "0.2.0"
