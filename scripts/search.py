#!/usr/bin/env python3
"""Drop-in for the ILIAS knn_search/search.py: same flags, run as this workflow.

    python scripts/search.py --query_hdf5 Q.hdf5 --positive_hdf5 P.hdf5 \
        --distractor_hdf5 'D_{idx}.hdf5' --total_distractors 100 --save_dir out
"""

import sys
from pathlib import Path

from ilias_knn.cli import main

if __name__ == "__main__":
    sys.exit(main(snakefile=Path(__file__).resolve().parents[1] / "Snakefile"))
