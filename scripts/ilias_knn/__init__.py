"""Exact sharded k-nearest-neighbour search over HDF5 embeddings (ILIAS).

Small modules with one job each:

- reading: ``features`` (feature files: headers, ids, checks), ``block_reader``
  (rows in blocks; the parallel chunk decoder), ``queries``, ``adapter``,
  ``selection`` (the mini-ILIAS id filter);
- searching: ``topk`` (the one top-k collector), ``scoring`` and ``bf16``
  (interchangeable scorers), ``engines`` (device and scorer choice),
  ``shard_search`` (one shard), ``phases`` (where a search's time goes);
- results: ``partials`` (a shard's top-k file), ``merge`` and
  ``merged_result`` (a model's top-k and its file), ``expansion`` (query
  expansion), ``formats`` (ILIAS outputs);
- evaluation: ``evaluation``, ``scale_curve``, ``plots``, ``summary``;
- the workflow around them: ``config`` (schema check), ``validate`` (checks
  before any job), ``cli`` (drop-in for the ILIAS search.py), ``logs``,
  ``atomic``, ``arrays``, ``errors``, ``demo`` (synthetic data).
"""

__version__ = "0.3.0"
