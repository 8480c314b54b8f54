"""How ``cim chat`` shows things: the style sheet, message lines, the echo of a send,
error texts; ``say`` prints one styled line above the prompt."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
from prompt_toolkit import print_formatted_text
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.styles import Style

from cim_client import CimApiError, Message
from shared.protocol import KickReason, MessageKind

__all__ = [
    "STYLE",
    "api_error_text",
    "change_line",
    "clock",
    "error_text",
    "format_message",
    "kick_text",
    "receipt_line",
    "say",
    "scheduled",
    "sent_line",
    "show",
]

STYLE = Style.from_dict(
    {
        "time": "ansibrightblack",
        "p2p": "ansicyan bold",
        "group": "ansigreen bold",
        "broadcast": "ansimagenta bold",
        "push": "ansiyellow bold",
        "system": "ansibrightblack italic",
        "me": "ansiblue bold",
        "status": "ansibrightblack",
        "error": "ansired",
        "info": "ansibrightblack",
        "good": "ansigreen",
        "warn": "ansiyellow",
        "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
        "bottom-toolbar.ok": "bg:#303030 ansigreen",
        "bottom-toolbar.bad": "bg:#303030 ansiyellow",
    }
)

_KICK_TEXT: dict[str, str] = {
    KickReason.DUPLICATE_LOGIN: "you logged in somewhere else; this session ends",
    KickReason.LOGOUT: "you logged out; this session ends",
    KickReason.REVOKED: "an operator ended this session",
    KickReason.DEVICE_LIMIT: "you logged in on too many devices; this one, the longest on, ends",
}
_API_HINTS = {
    "rate_limited": "sending too fast, slow down",
    "unknown_user": "no such user",
    "unknown_group": "no such group (or you are not in it)",
    "too_large": "the message is too long",
    "not_sender": "only its sender can change a message",
    "too_late": "too late to change that message",
    "unknown_message": "no such message (or it was recalled)",
}


def clock(ts_ms: int, now: datetime | None = None) -> str:
    """Local HH:MM, with the date in front when it is not today."""
    when = datetime.fromtimestamp(ts_ms / 1000)
    now = now or datetime.now()
    return when.strftime("%H:%M") if when.date() == now.date() else when.strftime("%a %d %b %H:%M")


def format_message(
    msg: Message, me: str, now: datetime | None = None, number: int | None = None
) -> FormattedText:
    """One message as a styled line: time (after ``[number]`` of a ``:h`` list), where it came
    from (``you → bob (from phone)`` for a carbon of my other device's send), body."""
    if msg.kind in (MessageKind.EDIT, MessageKind.RECALL):
        return change_line(msg, me, now)
    parts: list[tuple[str, str]] = [("class:time", clock(msg.ts, now) + " ")]
    if number is not None:
        parts.insert(0, ("class:status", f"[{number}] "))
    if msg.sender == me:
        where = f"#{msg.group}" if msg.group else msg.to
        parts.append(("class:me", f"you \u2192 {where}{_from_device(msg)}: "))
    elif msg.kind == MessageKind.GROUP:
        parts += [("class:group", f"#{msg.group} "), ("class:p2p", f"{msg.sender}: ")]
    elif msg.kind == MessageKind.BROADCAST:
        parts.append(("class:broadcast", f"(all) {msg.sender}: "))
    elif msg.kind == MessageKind.PUSH:
        parts.append(("class:push", f"push{f' from {msg.sender}' if msg.sender else ''}: "))
    elif msg.kind == MessageKind.SYSTEM:
        parts.append(("class:system", "system: "))
    else:
        parts.append(("class:p2p", f"{msg.sender}: "))
    parts.append(("class:system" if msg.kind == MessageKind.SYSTEM else "", msg.body))
    return FormattedText(parts)


def _from_device(msg: Message) -> str:
    return f" (from {msg.device})" if msg.carbon and msg.device else ""


def change_line(msg: Message, me: str, now: datetime | None = None) -> FormattedText:
    """An ``edit`` (its new text) or a ``recall`` of a message, as one line."""
    who = f"you{_from_device(msg)}" if msg.sender == me else msg.sender
    where = f" in #{msg.group}" if msg.group else ""
    parts: list[tuple[str, str]] = [("class:time", clock(msg.ts, now) + " ")]
    if msg.kind == MessageKind.RECALL:
        parts.append(("class:status", f"{who} recalled a message{where}"))
    else:
        parts += [("class:status", f"{who} edited a message{where}: "), ("", msg.body)]
    return FormattedText(parts)


def receipt_line(msg: Message, now: datetime | None = None) -> FormattedText:
    """The read mark: ``msg.sender`` read what I sent up to ``read_ts``."""
    up_to = clock(msg.read_ts or msg.ts, now)
    return FormattedText(
        [("class:good", f"\u2713 read by {msg.sender}"), ("class:status", f" (up to {up_to})")]
    )


def sent_line(where: str, body: str, status: str) -> FormattedText:
    """The echo of my own message with what the route said about it."""
    return FormattedText(
        [
            ("class:time", clock(int(time.time() * 1000)) + " "),
            ("class:me", f"you \u2192 {where}: "),
            ("", body),
            ("class:status", f"  ({status})"),
        ]
    )


def scheduled(due: int | None) -> str:
    """The status of a delayed send."""
    return f"scheduled for {clock(due)}" if due else "scheduled"


def api_error_text(exc: CimApiError) -> str:
    """``code (status): hint: detail`` for an error answer of the route."""
    hint = _API_HINTS.get(exc.code)
    detail = f"{hint}: {exc.detail}" if hint and exc.detail and exc.detail != hint else (hint or exc.detail)
    return f"{exc.code} ({exc.status}): {detail}" if detail else f"{exc.code} ({exc.status})"


def error_text(exc: BaseException) -> str:
    """Why a login or a reconnect failed, in one line."""
    if isinstance(exc, CimApiError):
        return api_error_text(exc)
    if isinstance(exc, httpx.HTTPError | OSError):
        return f"cannot reach it ({type(exc).__name__}: {exc})"
    return str(exc)


def kick_text(reason: str) -> str:
    """What a final kick means for the person at the keyboard."""
    return _KICK_TEXT.get(reason, f"kicked: {reason}")


def show(text: FormattedText) -> None:
    """Print a styled line above the prompt."""
    print_formatted_text(text, style=STYLE)


def say(style: str, text: str) -> None:
    """Print ``text`` in one style class (``error``, ``info``, ``good``, ``warn``, ...)."""
    show(FormattedText([(f"class:{style}", text)]))
