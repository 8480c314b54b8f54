"""Emoji aliases for the chat: ``:smile:`` in sent text becomes the emoji.

The table follows the names people already know from GitHub and Slack. Only
aliases in the table are replaced; any other ``:word:`` is left as typed, so
text such as ``10:30:00`` or ``a:b:c`` goes out unchanged.
"""

from __future__ import annotations

import re

__all__ = ["ALIASES", "PAGE_SIZE", "page", "page_count", "replace_aliases"]

PAGE_SIZE = 20

ALIASES: dict[str, str] = {
    "smile": "\U0001f604",
    "grin": "\U0001f601",
    "joy": "\U0001f602",
    "rofl": "\U0001f923",
    "smiley": "\U0001f603",
    "laughing": "\U0001f606",
    "wink": "\U0001f609",
    "blush": "\U0001f60a",
    "yum": "\U0001f60b",
    "sunglasses": "\U0001f60e",
    "heart_eyes": "\U0001f60d",
    "kissing_heart": "\U0001f618",
    "thinking": "\U0001f914",
    "neutral_face": "\U0001f610",
    "expressionless": "\U0001f611",
    "unamused": "\U0001f612",
    "roll_eyes": "\U0001f644",
    "smirk": "\U0001f60f",
    "relieved": "\U0001f60c",
    "pensive": "\U0001f614",
    "sleepy": "\U0001f62a",
    "sleeping": "\U0001f634",
    "mask": "\U0001f637",
    "nerd": "\U0001f913",
    "confused": "\U0001f615",
    "worried": "\U0001f61f",
    "open_mouth": "\U0001f62e",
    "astonished": "\U0001f632",
    "flushed": "\U0001f633",
    "cry": "\U0001f622",
    "sob": "\U0001f62d",
    "scream": "\U0001f631",
    "angry": "\U0001f620",
    "rage": "\U0001f621",
    "skull": "\U0001f480",
    "poop": "\U0001f4a9",
    "clown": "\U0001f921",
    "ghost": "\U0001f47b",
    "alien": "\U0001f47d",
    "robot": "\U0001f916",
    "see_no_evil": "\U0001f648",
    "upside_down": "\U0001f643",
    "money_mouth": "\U0001f911",
    "hugs": "\U0001f917",
    "shushing": "\U0001f92b",
    "zipper_mouth": "\U0001f910",
    "partying": "\U0001f973",
    "star_struck": "\U0001f929",
    "facepalm": "\U0001f926",
    "shrug": "\U0001f937",
    "wave": "\U0001f44b",
    "+1": "\U0001f44d",
    "thumbsup": "\U0001f44d",
    "-1": "\U0001f44e",
    "thumbsdown": "\U0001f44e",
    "ok_hand": "\U0001f44c",
    "clap": "\U0001f44f",
    "pray": "\U0001f64f",
    "muscle": "\U0001f4aa",
    "raised_hands": "\U0001f64c",
    "point_up": "\u261d\ufe0f",
    "point_right": "\U0001f449",
    "v": "\u270c\ufe0f",
    "crossed_fingers": "\U0001f91e",
    "handshake": "\U0001f91d",
    "eyes": "\U0001f440",
    "brain": "\U0001f9e0",
    "heart": "\u2764\ufe0f",
    "broken_heart": "\U0001f494",
    "sparkling_heart": "\U0001f496",
    "fire": "\U0001f525",
    "sparkles": "\u2728",
    "star": "\u2b50",
    "zap": "\u26a1",
    "boom": "\U0001f4a5",
    "tada": "\U0001f389",
    "confetti_ball": "\U0001f38a",
    "balloon": "\U0001f388",
    "gift": "\U0001f381",
    "trophy": "\U0001f3c6",
    "medal": "\U0001f3c5",
    "100": "\U0001f4af",
    "check": "\u2714\ufe0f",
    "white_check_mark": "\u2705",
    "x": "\u274c",
    "warning": "\u26a0\ufe0f",
    "no_entry": "\u26d4",
    "question": "\u2753",
    "exclamation": "\u2757",
    "bulb": "\U0001f4a1",
    "bell": "\U0001f514",
    "lock": "\U0001f512",
    "key": "\U0001f511",
    "hammer": "\U0001f528",
    "wrench": "\U0001f527",
    "gear": "\u2699\ufe0f",
    "bug": "\U0001f41b",
    "rocket": "\U0001f680",
    "ship": "\U0001f6a2",
    "package": "\U0001f4e6",
    "memo": "\U0001f4dd",
    "book": "\U0001f4d6",
    "calendar": "\U0001f4c5",
    "chart": "\U0001f4c8",
    "email": "\U0001f4e7",
    "phone": "\U0001f4f1",
    "computer": "\U0001f4bb",
    "hourglass": "\u231b",
    "alarm_clock": "\u23f0",
    "coffee": "\u2615",
    "tea": "\U0001f375",
    "beer": "\U0001f37a",
    "beers": "\U0001f37b",
    "wine": "\U0001f377",
    "pizza": "\U0001f355",
    "hamburger": "\U0001f354",
    "cake": "\U0001f370",
    "birthday": "\U0001f382",
    "cookie": "\U0001f36a",
    "apple": "\U0001f34e",
    "sunny": "\u2600\ufe0f",
    "cloud": "\u2601\ufe0f",
    "umbrella": "\u2614",
    "snowflake": "\u2744\ufe0f",
    "rainbow": "\U0001f308",
    "moon": "\U0001f319",
    "earth": "\U0001f30d",
    "dog": "\U0001f436",
    "cat": "\U0001f431",
    "mouse": "\U0001f42d",
    "fox": "\U0001f98a",
    "bear": "\U0001f43b",
    "panda": "\U0001f43c",
    "penguin": "\U0001f427",
    "snake": "\U0001f40d",
    "turtle": "\U0001f422",
    "unicorn": "\U0001f984",
    "snail": "\U0001f40c",
    "tree": "\U0001f333",
    "rose": "\U0001f339",
    "sunflower": "\U0001f33b",
    "soccer": "\u26bd",
    "basketball": "\U0001f3c0",
    "checkered_flag": "\U0001f3c1",
    "musical_note": "\U0001f3b5",
    "video_game": "\U0001f3ae",
    "dart": "\U0001f3af",
    "moneybag": "\U0001f4b0",
    "zzz": "\U0001f4a4",
    "speech_balloon": "\U0001f4ac",
}

_ALIAS = re.compile(r":([a-z0-9_+\-]+):")


def replace_aliases(text: str) -> str:
    """Return ``text`` with every known ``:alias:`` replaced by its emoji."""

    def _one(match: re.Match[str]) -> str:
        return ALIASES.get(match.group(1), match.group(0))

    return _ALIAS.sub(_one, text)


def page_count(size: int = PAGE_SIZE) -> int:
    """How many pages of ``size`` aliases the table fills."""
    return -(-len(ALIASES) // size)


def page(number: int, size: int = PAGE_SIZE) -> list[tuple[str, str]]:
    """The ``(alias, emoji)`` pairs of page ``number`` (1-based); empty past the last page."""
    if number < 1:
        return []
    items = list(ALIASES.items())
    return items[(number - 1) * size : number * size]
