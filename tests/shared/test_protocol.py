"""shared.protocol: the frame codec, fed bytes."""

from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

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
# ----- property: any bytes, in any chunking -------------------------------------------------

# Bounded in time for CI: a fixed number of examples, no example database, no slow explain phase.
_BOUNDED: dict = {
    "deadline": 500,
    "database": None,
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    "suppress_health_check": [HealthCheck.too_slow],
}
_CONTRACT_CODES = {ErrorCode.FRAME_TOO_LARGE, ErrorCode.BAD_FRAME, ErrorCode.UNKNOWN_TYPE}
_SMALL_MAX = 256
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
_frames = st.dictionaries(st.text(max_size=8), _values, max_size=4).map(
    lambda fields: {**fields, "t": "ping"}
)
# A stream: valid frames, raw garbage, and headers announcing any length, glued together.
_pieces = st.lists(
    st.one_of(_frames.map(encode), st.binary(max_size=40), st.integers(0, 2**32 - 1).map(HEADER.pack)),
    max_size=8,
)


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _decode_stream(chunks: list[bytes]) -> tuple[list[dict], FrameError | None]:
    """What a node does with a connection's bytes: every frame it decodes, or the first error."""
    decoder = FrameDecoder(_SMALL_MAX)
    frames: list[dict] = []
    try:
        for chunk in chunks:
            for frame in decoder.feed(chunk):
                check_client_frame(frame)
                frames.append(frame)
    except FrameError as exc:
        return frames, exc
    return frames, None


@settings(**_BOUNDED, max_examples=150)
@given(pieces=_pieces, cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_any_bytes_in_any_chunks_give_frames_or_a_contract_error(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(pieces)
    frames, error = _decode_stream(_chunked(data, cuts))
    assert all(isinstance(f, dict) and isinstance(f["t"], str) for f in frames)
    if error is not None:
        assert error.code in _CONTRACT_CODES
    # The chunking changes nothing: the same frames and the same outcome as all at once.
    whole_frames, whole_error = _decode_stream([data])
    assert frames == whole_frames
    assert (error is None) == (whole_error is None)
    if error is not None and whole_error is not None:
        assert error.code == whole_error.code


@settings(**_BOUNDED, max_examples=100)
@given(frames=st.lists(_frames, max_size=6), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_valid_frames_come_back_whole_in_any_chunks(frames: list[dict], cuts: list[int]) -> None:
    data = b"".join(encode(f) for f in frames)
    decoded, error = _decode_stream(_chunked(data, cuts))
    big = [f for f in frames if len(encode(f)) - HEADER.size > _SMALL_MAX]
    if big:
        assert error is not None and error.code == ErrorCode.FRAME_TOO_LARGE
    else:
        assert error is None and decoded == frames
