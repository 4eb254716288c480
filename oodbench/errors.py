"""The one exception type users see: it becomes a one-line message and exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: what was wrong and what to do, on one line.

    The CLI turns it into ``error: <message>`` on stderr and exit code 2, with no traceback.
    """
