"""Errors caused by the user's input (a config key, a data file, a flag). The CLI prints these as one
readable line and exits 2; anything else is a bug and keeps its traceback."""


class InputError(ValueError):
    """Bad input; the message names the file, field or flag."""
