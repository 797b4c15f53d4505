"""One exception type for bad input, so scripts can print a clean message."""

import contextlib
import zipfile


class InputError(Exception):
    """Bad user input: the message names the file, what is wrong and the fix."""


# what numpy raises for a file that is cut short, overwritten or not an npz
DAMAGED_FILE_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


@contextlib.contextmanager
def damaged_file_refused(path, what, then):
    """A workflow-made file that cannot be read becomes one line: its path, and
    the fix (delete it and run again: it is a target, so it is made again)."""
    try:
        yield
    except InputError:
        raise
    except DAMAGED_FILE_ERRORS as exc:
        raise InputError(
            f"{path}: {what} is damaged or from an older version ({exc}). Delete it and run again: {then}."
        ) from exc
