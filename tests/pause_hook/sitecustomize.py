"""Test hook, on PYTHONPATH only in tests that stop a run at a known point.

With ILIAS_TEST_PAUSE_FIFO set, the shard-search job numbered
ILIAS_TEST_PAUSE_JOB (0 = the first to start) waits at its start until the
test opens that named pipe for writing, then until the test closes it. With
one core Snakemake starts a job only after the one before has finished, so
the test knows exactly which shards are done, however fast the run goes.
"""

import os
import sys

_FIFO = os.environ.get("ILIAS_TEST_PAUSE_FIFO")
if _FIFO and sys.argv and sys.argv[0].endswith("search_shard.py"):
    started = 0
    while True:  # claim this job's number: the first free marker file
        try:
            os.close(os.open(f"{_FIFO}.started{started}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
        except FileExistsError:
            started += 1
    if started == int(os.environ["ILIAS_TEST_PAUSE_JOB"]):
        with open(_FIFO, "rb") as pipe:  # blocks until the test opens it
            pipe.read()  # returns when the test closes it
