"""The one exception type for bad input from a user."""


class UserError(ValueError):
    """Bad input (unknown depth, precision, shape, ...): the command line prints it as one line.

    A ``ValueError`` so library callers can catch it the usual way; anything else that escapes a
    command is a bug and keeps its traceback.
    """
