"""The values of cim_client/_models.py, built from what the route and the nodes send."""

from __future__ import annotations

from cim_client import ConnectionState, Message, NodeAddress, SendResult


def test_message_from_a_frame_and_from_a_history_item() -> None:
    frame = {"t": "msg", "id": "m1", "seq": 3, "kind": "group", "from": "bob", "to": "dev", "body": "hi"}
    msg = Message.from_wire({**frame, "ts": 9, "group": "dev"})
    assert msg == Message("m1", 3, "group", "bob", "dev", "hi", 9, "dev")
    unstored = Message.from_wire({"id": "b1", "seq": None, "kind": "broadcast", "from": "a", "body": "x"})
    assert (unstored.seq, unstored.ts, unstored.to, unstored.group) == (0, 0, "", None)


def test_send_result_and_node_address() -> None:
    assert SendResult.from_wire({"id": "x", "seq": 4, "ts": 5, "status": "stored"}) == SendResult(
        "x", 4, 5, "stored"
    )
    delayed = SendResult.from_wire({"id": "y", "seq": None, "ts": 5, "status": "scheduled", "due": 60})
    assert (delayed.seq, delayed.due) == (None, 60)
    node = NodeAddress.from_wire({"id": "node-1", "host": "h", "port": "7000"})
    assert node == NodeAddress("node-1", "h", 7000) and node.ws_url is None
    with_ws = NodeAddress.from_wire({"id": "n", "host": "h", "port": 1, "ws_url": "ws://h:2/ws"})
    assert with_ws.ws_url == "ws://h:2/ws"


def test_connection_states_are_their_names() -> None:
    assert [str(s) for s in ConnectionState] == ["connecting", "ready", "reconnecting", "closed"]


def test_message_v02_fields() -> None:
    carbon = Message.from_wire(
        {
            "id": "a",
            "seq": 3,
            "kind": "p2p",
            "from": "me",
            "to": "bob",
            "body": "x",
            "ts": 5,
            "carbon": True,
            "device": "phone",
        }
    )
    assert (carbon.carbon, carbon.device, carbon.to) == (True, "phone", "bob")
    receipt = Message.from_wire(
        {"id": "b", "seq": 4, "kind": "receipt", "from": "bob", "with": "me", "read_ts": 5}
    )
    assert (receipt.kind, receipt.with_, receipt.read_ts, receipt.carbon) == ("receipt", "me", 5, False)
    edit = Message.from_wire({"id": "c", "kind": "edit", "ref": "a", "body": "y", "edited_ts": 9})
    assert (edit.ref, edit.body, edit.edited_ts, edit.device) == ("a", "y", 9, None)
