"""Errors that are the user's to fix: the CLI prints them as one line and exits non-zero (no traceback
unless `debug=true`). Anything else is a bug and keeps its traceback."""


class UserError(Exception):
    """A mistake in the user's input (config key, value, file, data root). The message names it and says
    what to do."""


class DataError(UserError):
    """A dataset file that cannot be used: missing, corrupt, or inconsistent with its annotation."""
