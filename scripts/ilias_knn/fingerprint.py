"""Content fingerprints of input files, so that a file whose content changed
under an old modification time (``rsync -a``, ``cp -p``, a restore from
backup) is searched again.

A fingerprint is the file's size and a sha256 of its bytes: all of them for
a small file (queries, adapter, selected ids, ground truth), and for a large
one (a distractor file) the first and last ``SAMPLE_BYTES`` and
``SAMPLES`` pieces at evenly spaced offsets: features extracted again, by
another model or from other images, differ in every piece. Computing one
reads about 1 MB whatever the file's size.

A fingerprint is kept in a cache keyed by the file's inode, size,
modification time and status-change time (ctime): every way of writing a
file sets its ctime to now, and no tool can set it back, so an unchanged key
means unchanged content and the file is not read again. Standard library
only: the workflow computes these while Snakemake builds its DAG.
"""

import hashlib
import json
import os
from pathlib import Path

WHOLE_FILE_BYTES = 16 << 20  # files up to this size are hashed whole
SAMPLES = 240
SAMPLE_BYTES = 4096


def stat_key(path):
    """What the cache trusts: (inode, size, mtime, ctime), in nanoseconds."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def compute_fingerprint(path):
    """``size:sha256`` of the file's content (sampled where it is large)."""
    size = os.path.getsize(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= WHOLE_FILE_BYTES:
            for piece in iter(lambda: fh.read(1 << 20), b""):
                digest.update(piece)
        else:
            fd = fh.fileno()
            last = size - SAMPLE_BYTES
            for i in range(SAMPLES + 1):
                digest.update(os.pread(fd, SAMPLE_BYTES, last * i // SAMPLES))
    return f"{size}:{digest.hexdigest()[:32]}"


class FingerprintCache:
    """Fingerprints by path, computed once per content: in memory for this
    process, and in ``folder`` (one small file per input) across runs when
    ``writable`` (the main Snakemake process only: jobs read it)."""

    def __init__(self, folder=None, writable=False):
        self.folder = Path(folder) if folder else None
        self.writable = writable
        self._known = {}

    def _entry(self, path):
        name = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:24]
        return self.folder / f"{name}.json"

    def fingerprint(self, path):
        """The fingerprint of ``path``; None where it does not exist or cannot
        be read (the input checks name such a file)."""
        path = str(path)
        try:
            key = stat_key(path)
        except OSError:
            return None
        memo = self._known.get(path)
        if memo and memo[0] == key:
            return memo[1]
        value = self._stored(path, key)
        if value is None:
            try:
                value = compute_fingerprint(path)
            except OSError:
                return None
            self._store(path, key, value)
        self._known[path] = (key, value)
        return value

    def _stored(self, path, key):
        if self.folder is None:
            return None
        try:
            entry = json.loads(self._entry(path).read_text())
        except (OSError, ValueError):
            return None
        ok = entry.get("path") == os.path.abspath(path) and entry.get("key") == key
        return entry.get("fingerprint") if ok else None

    def _store(self, path, key, value):
        if self.folder is None or not self.writable:
            return
        entry = self._entry(path)
        tmp = entry.with_name(f".{entry.name}.tmp-{os.getpid()}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"path": os.path.abspath(path), "key": key, "fingerprint": value}))
            os.replace(tmp, entry)
        except OSError:  # a cache that cannot be written only costs a re-read next run
            tmp.unlink(missing_ok=True)
