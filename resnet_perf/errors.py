"""The one exception type for bad input from a user, and the check of a name among its choices."""

from collections.abc import Collection


class UserError(ValueError):
    """Bad input (unknown depth, precision, shape, ...): the command line prints it as one line.

    A ``ValueError`` so library callers can catch it the usual way; anything else that escapes a
    command is a bug and keeps its traceback.
    """


def require_choice(kind: str, value: object, choices: Collection[str]) -> None:
    """The one-line error for a ``kind`` (a layout, a recipe, ...) whose ``value`` is not one of ``choices``."""
    if value not in choices:
        raise UserError(f"unknown {kind} {value!r}: choose one of {', '.join(choices)}")
