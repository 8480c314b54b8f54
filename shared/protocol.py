"""The client <-> node wire protocol: frame codec, frame types, error and kick codes.

A frame is a 4-byte big-endian unsigned length N followed by N bytes of
MessagePack encoding a map with string keys; every map has ``"t"``.

This module is pure: bytes in, frames out (and back). It imports no asyncio so
that the node, the SDK and the tests share one codec and can feed it bytes.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterator
from typing import Any

import msgpack

from shared.errors import FrameError

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER",
    "ErrorCode",
    "FrameDecoder",
    "FrameType",
    "KickReason",
    "MessageKind",
    "NAME_RE",
    "NODE_ID_RE",
    "check_client_frame",
    "check_size",
    "decode_frame",
    "decode_payload",
    "encode",
    "error_frame",
    "kick_frame",
]

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 65536

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
"""Usernames and group names. Check with ``fullmatch`` (``match`` lets ``$`` pass a trailing
newline); the anchors are there for the HTTP layer, whose ``pattern=`` searches."""
NODE_ID_RE = re.compile(r"^[a-z0-9-]{1,64}$")
"""Node ids (registry keys, NATS subjects); ``fullmatch`` as above."""


class FrameType(enum.StrEnum):
    """Values of a frame's ``"t"`` key."""

    LOGIN = "login"
    PING = "ping"
    PONG = "pong"
    ACK = "ack"
    BYE = "bye"
    WELCOME = "welcome"
    MSG = "msg"
    KICK = "kick"
    ERROR = "error"


CLIENT_FRAMES = frozenset({FrameType.LOGIN, FrameType.PING, FrameType.ACK, FrameType.BYE})
_CLIENT_FRAME_OF = {kind.value: kind for kind in CLIENT_FRAMES}


class MessageKind(enum.StrEnum):
    """``kind`` of a ``msg`` frame. Stored: p2p, group, push to a list, receipt, edit, recall."""

    P2P = "p2p"
    GROUP = "group"
    BROADCAST = "broadcast"
    PUSH = "push"
    SYSTEM = "system"
    RECEIPT = "receipt"
    """v0.2: ``from`` read the conversation ``with`` up to ``read_ts``."""
    TYPING = "typing"
    """v0.2: ``from`` is typing to ``to`` (or in ``group``); not stored, seq 0."""
    EDIT = "edit"
    """v0.2: message ``ref`` now reads ``body``."""
    RECALL = "recall"
    """v0.2: message ``ref`` was taken back."""


class ErrorCode(enum.StrEnum):
    """Codes of ``error`` frames. Every one of them is followed by a close."""

    FRAME_TOO_LARGE = "frame_too_large"
    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    NOT_LOGGED_IN = "not_logged_in"
    BAD_TOKEN = "bad_token"
    LOGIN_TIMEOUT = "login_timeout"

    @property
    def reconnect(self) -> bool:
        """Whether an SDK should log in again after this error (else: a bug or a bad token)."""
        return self is ErrorCode.LOGIN_TIMEOUT


class KickReason(enum.StrEnum):
    """Reasons of ``kick`` frames; ``reconnect`` says whether the SDK logs in again."""

    DUPLICATE_LOGIN = "duplicate_login"
    DRAIN = "drain"
    LOGOUT = "logout"
    REVOKED = "revoked"
    DEVICE_LIMIT = "device_limit"
    """v0.2: a login on one device too many ended this, the longest-connected one."""

    @property
    def reconnect(self) -> bool:
        return self is KickReason.DRAIN


def encode(frame: dict[str, Any]) -> bytes:
    """Encode one frame (length prefix + MessagePack map)."""
    body = msgpack.packb(frame, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def decode_payload(payload: bytes) -> dict[str, Any]:
    """Decode the MessagePack body of one frame and check its shape.

    Raises ``FrameError`` with ``bad_frame`` (not MessagePack, not a map, no
    string ``t``) or ``unknown_type`` (a ``t`` a client may not send).
    """
    try:
        frame = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise FrameError(ErrorCode.BAD_FRAME, "frame is not valid MessagePack") from exc
    if not isinstance(frame, dict):
        raise FrameError(ErrorCode.BAD_FRAME, "frame is not a map")
    kind = frame.get("t")
    if not isinstance(kind, str):
        raise FrameError(ErrorCode.BAD_FRAME, "frame has no string 't'")
    return frame


def decode_frame(data: bytes) -> dict[str, Any]:
    """Decode one complete encoded frame (length prefix included), as ``encode`` made it."""
    (size,) = HEADER.unpack_from(data)
    if len(data) != HEADER.size + size:
        raise FrameError(ErrorCode.BAD_FRAME, "frame length does not match its header")
    return decode_payload(data[HEADER.size :])


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes, iterate the complete frames.

    The length check happens as soon as the 4-byte header is in, so an
    oversized frame is refused before its body is buffered.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        if not self._buf and len(data) >= HEADER.size:  # the usual read: exactly one whole frame
            (size,) = HEADER.unpack_from(data)
            check_size(size, self.max_frame)
            if len(data) == HEADER.size + size:
                yield decode_payload(data[HEADER.size :])
                return
        self._buf += data
        while True:
            if len(self._buf) < HEADER.size:
                return
            (size,) = HEADER.unpack_from(self._buf)
            check_size(size, self.max_frame)
            end = HEADER.size + size
            if len(self._buf) < end:
                return
            payload = bytes(self._buf[HEADER.size : end])
            del self._buf[:end]
            yield decode_payload(payload)


def check_size(size: int, max_frame: int) -> None:
    """Raise ``frame_too_large`` for a declared length above ``max_frame``."""
    if size > max_frame:
        raise FrameError(ErrorCode.FRAME_TOO_LARGE, f"frame of {size} bytes exceeds the limit of {max_frame}")


def check_client_frame(frame: dict[str, Any]) -> FrameType:
    """Return the type of a frame a client sent, or raise ``unknown_type``."""
    kind = _CLIENT_FRAME_OF.get(frame["t"])  # a dict lookup: FrameType(...) costs a microsecond
    if kind is None:
        raise FrameError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {frame['t']!r}")
    return kind


def error_frame(code: ErrorCode | str, reason: str) -> dict[str, Any]:
    return {"t": FrameType.ERROR.value, "code": str(code), "reason": reason}


def kick_frame(reason: KickReason) -> dict[str, Any]:
    return {"t": FrameType.KICK.value, "reason": reason.value}
