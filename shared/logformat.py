"""The one log line format of every cim process, with control characters escaped.

A logged value can come from a user (a username, a group name, a client's address); with a
newline in it, a plain formatter would let it forge a log line of its own. The formatter
escapes every control character of the message (``\\n`` becomes ``\\x0a``); tracebacks,
which the formatter appends after the message, keep their lines.
"""

from __future__ import annotations

import logging
import re

__all__ = ["LOG_FORMAT", "EscapingFormatter", "escape_controls"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with each control character as ``\\xNN`` (``\\uNNNN`` past 0xff)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 256 else f"\\u{ord(m[0]):04x}", text)


class EscapingFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose message part never holds a control character."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape_controls(record.message)
        return super().formatMessage(record)
