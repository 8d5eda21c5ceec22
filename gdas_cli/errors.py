"""The one user-facing error type: the CLI prints its message on one line and exits 2."""


class GdasError(Exception):
    """A problem with the user's input (file, option, reference) rather than a bug."""
