"""shared.protocol: the frame codec, fed bytes."""

from __future__ import annotations

import struct

import msgpack
import pytest

from shared.errors import FrameError
from shared.protocol import (
    HEADER,
    NAME_RE,
    NODE_ID_RE,
    ErrorCode,
    FrameDecoder,
    FrameType,
    KickReason,
    check_client_frame,
    decode_frame,
    decode_payload,
    encode,
    error_frame,
    kick_frame,
)


def test_encode_is_length_prefixed_msgpack() -> None:
    data = encode({"t": "ping"})
    (size,) = HEADER.unpack_from(data)
    assert size == len(data) - 4
    assert msgpack.unpackb(data[4:]) == {"t": "ping"}


def test_decoder_round_trip_in_any_chunking() -> None:
    frames = [{"t": "login", "token": "x" * 300, "last_seq": 7}, {"t": "ping"}, {"t": "ack", "seq": 9}]
    data = b"".join(encode(f) for f in frames)
    for step in (1, 3, 7, len(data)):
        decoder = FrameDecoder()
        got = []
        for i in range(0, len(data), step):
            got.extend(decoder.feed(data[i : i + step]))
        assert got == frames


def test_decode_frame_reads_one_encoded_frame() -> None:
    frame = {"t": "msg", "seq": 3, "body": "hi"}
    assert decode_frame(encode(frame)) == frame
    with pytest.raises(FrameError) as info:
        decode_frame(encode(frame) + b"x")
    assert info.value.code == "bad_frame"


def test_oversize_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_frame=100)
    with pytest.raises(FrameError) as exc:
        list(decoder.feed(struct.pack(">I", 101)))
    assert exc.value.code == ErrorCode.FRAME_TOO_LARGE
    assert list(FrameDecoder(max_frame=100).feed(encode({"t": "x" * 90}))) != []


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",
        msgpack.packb([1, 2]),
        msgpack.packb({"x": 1}),
        msgpack.packb({"t": 5}),
        msgpack.packb({1: "a"}),
    ],
    ids=["not-msgpack", "list", "no-t", "t-not-str", "int-key"],
)
def test_bad_payloads(payload: bytes) -> None:
    with pytest.raises(FrameError) as exc:
        decode_payload(payload)
    assert exc.value.code == ErrorCode.BAD_FRAME


def test_client_frame_types() -> None:
    for t in ("login", "ping", "ack", "bye"):
        assert check_client_frame({"t": t}) == FrameType(t)
    for t in ("welcome", "msg", "pong", "nope"):
        with pytest.raises(FrameError) as exc:
            check_client_frame({"t": t})
        assert exc.value.code == ErrorCode.UNKNOWN_TYPE


def test_error_and_kick_frames() -> None:
    assert error_frame(ErrorCode.BAD_TOKEN, "why") == {"t": "error", "code": "bad_token", "reason": "why"}
    assert kick_frame(KickReason.DRAIN) == {"t": "kick", "reason": "drain"}
    assert KickReason.DRAIN.reconnect and not KickReason.DUPLICATE_LOGIN.reconnect
    assert ErrorCode.LOGIN_TIMEOUT.reconnect and not ErrorCode.BAD_TOKEN.reconnect


@pytest.mark.parametrize("name", ["bob\n", "", "a" * 33, "bo b", "bob/x"])
def test_name_rule_refuses(name: str) -> None:
    assert NAME_RE.fullmatch(name) is None


def test_name_and_node_id_rules_accept() -> None:
    assert NAME_RE.fullmatch("Bob_1.x-y") and NODE_ID_RE.fullmatch("node-1")
    assert NODE_ID_RE.fullmatch("Node-1") is None
