"""My own messages as the chat knows them: which carbons to leave unprinted (those of sends
from this device: the chat echoed them when it sent them), my latest message (what ``:edit``
and ``:recall`` change by default) and the numbers the last ``:h`` gave messages
(``:edit N``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cim_client import Message

__all__ = ["MyMessages"]


@dataclass
class MyMessages:
    """What ``:edit`` / ``:recall`` may refer to, and which carbons to leave unprinted."""

    me: str
    device: str
    last: str | None = None
    """Id of my latest message, sent from here or from another device."""
    numbered: dict[int, Message] = field(default_factory=dict)

    def sent(self, msg_id: str) -> None:
        """This device sent ``msg_id``."""
        self.last = msg_id

    def seen(self, msg: Message) -> bool:
        """Note a message that came in; True when it is the carbon of a send from this device.
        (Told by the carbon's ``device``, not by the send's answer: the carbon may come first.)"""
        if not msg.carbon or msg.kind not in ("p2p", "group"):
            return False
        if msg.device == self.device:
            return True
        self.last = msg.id
        return False

    def number(self, newest_first: list[Message]) -> list[tuple[int, Message]]:
        """Number a ``:h`` page, oldest first from 1; remember the numbers."""
        self.numbered = dict(enumerate(reversed(newest_first), start=1))
        return list(self.numbered.items())

    def pick(self, number: int | None) -> str:
        """The id ``:edit`` / ``:recall`` mean; ``LookupError`` with a text for the user."""
        if number is None:
            if self.last is None:
                raise LookupError("nothing of mine to change yet (or give a number from :h)")
            return self.last
        msg = self.numbered.get(number)
        if msg is None:
            raise LookupError(f"no message {number} in the last :h")
        if msg.sender != self.me:
            raise LookupError(f"message {number} is {msg.sender}'s, not mine")
        return msg.id
