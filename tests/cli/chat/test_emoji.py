"""The :alias: -> emoji table (cim_cli/chat/emoji.py)."""

from __future__ import annotations

from cim_cli.chat import emoji


def test_emoji_pages_cover_the_table() -> None:
    pages = [emoji.page(n) for n in range(1, emoji.page_count() + 1)]
    assert all(len(p) == emoji.PAGE_SIZE for p in pages[:-1])
    assert 0 < len(pages[-1]) <= emoji.PAGE_SIZE
    assert sum(len(p) for p in pages) == len(emoji.ALIASES)
    assert emoji.page(emoji.page_count() + 1) == [] and emoji.page(0) == []


def test_emoji_replace() -> None:
    assert emoji.replace_aliases(":fire::fire:") == "\U0001f525\U0001f525"
    assert emoji.replace_aliases("a:b:c") == "a:b:c"
    assert emoji.replace_aliases(":FIRE:") == ":FIRE:"
