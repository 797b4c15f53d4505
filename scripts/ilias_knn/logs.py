"""Logging set-up for Snakemake scripts: messages to the rule's log file."""

import errno
import logging
import sys


def setup_logging(log_path=None):
    """Send log records (with timestamps) to ``log_path`` and to stderr."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    # faiss's loader logs at INFO that its AVX2 module failed to import, even
    # where one library dispatches to AVX2 at run time: a false alarm per job
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    return logging.getLogger("ilias_knn")


def run_logged(main, snakemake):
    """Run ``main(snakemake)`` with logging to the rule's log. Bad input and a full
    disk become one clear line and exit code 1 (outputs are written atomically,
    so nothing half-written is left under a final name)."""
    from .errors import InputError

    log = setup_logging(snakemake.log[0])
    try:
        main(snakemake)
    except InputError as exc:
        log.error("%s", exc)
        sys.exit(1)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        log.error(
            "no space left while writing %s (%s). Free space where the results go (or point "
            "results_dir elsewhere) and run again: finished outputs are kept, none is half-written.",
            ", ".join(map(str, snakemake.output)),
            exc.strerror or exc,
        )
        sys.exit(1)
