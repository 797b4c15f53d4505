"""One exception type for bad input, so scripts can print a clean message."""


class InputError(Exception):
    """Bad user input: the message names the file, what is wrong and the fix."""
