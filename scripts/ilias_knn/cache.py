"""Where this machine keeps what the workflow measured once (GEMM rates,
input fingerprints): ``$ILIAS_KNN_CACHE``, else ``~/.cache/ilias_knn``."""

import os
from pathlib import Path


def cache_dir():
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ilias_knn"
    return Path(os.environ.get("ILIAS_KNN_CACHE", default))
