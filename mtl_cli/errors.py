"""The one exception type for mistakes a user can fix, and how it is reported."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (config, data, checkpoint) that they can fix.

    The message is a single readable line: what is wrong and what to do about it.
    The command-line entry points print it without a traceback and exit non-zero.
    """


def one_line(message: str) -> str:
    """Collapse a possibly multi-line message into one line."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())
