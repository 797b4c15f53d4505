"""Logging set-up for Snakemake scripts: messages to the rule's log file."""

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
    return logging.getLogger("ilias_knn")


def run_logged(main, log_path):
    """Run ``main()``; bad input becomes one clear line in the log and exit code 1."""
    from .errors import InputError

    log = setup_logging(log_path)
    try:
        main()
    except InputError as exc:
        log.error("%s", exc)
        sys.exit(1)
