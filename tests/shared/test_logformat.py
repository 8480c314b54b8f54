"""shared.logformat: a user's value cannot forge a log line."""

from __future__ import annotations

import logging

from shared.logformat import LOG_FORMAT, EscapingFormatter, escape_controls


def test_control_characters_are_escaped() -> None:
    assert escape_controls("bob\nINFO x\r\x1b[31m\x7f\u2028") == "bob\\x0aINFO x\\x0d\\x1b[31m\\x7f\\u2028"
    assert escape_controls("plain ünïcode") == "plain ünïcode"


def test_a_forged_line_stays_on_one_line() -> None:
    formatter = EscapingFormatter(LOG_FORMAT)
    record = logging.LogRecord(
        "cim_route.api.account",
        logging.INFO,
        __file__,
        1,
        "login refused for %s",
        ("x\n2026 INFO root: ok",),
        None,
    )
    line = formatter.format(record)
    assert "\n" not in line and line.endswith("login refused for x\\x0a2026 INFO root: ok")
