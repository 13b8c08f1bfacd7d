"""What an encoder reads from a catalogue item."""

from __future__ import annotations

import re
from typing import Protocol


class HasContent(Protocol):
    title: str | None
    text: str | None
    categories: list[str]
    attributes: dict[str, float]


def category_token(category: str) -> str:
    """A category as one token, so "Sci-Fi" the genre and "sci" the word stay apart.

    >>> category_token("Sci-Fi & Fantasy")
    'cat_sci_fi_fantasy'
    """
    return "cat_" + re.sub(r"[^0-9a-z]+", "_", category.lower()).strip("_")


def item_document(item: HasContent, category_tokens: bool = True) -> str:
    """Title, categories and text as one string (title first: encoders truncate long texts).

    >>> from freshrec.schema import ItemIn
    >>> item_document(ItemIn(item_id="1", title="Trail shoe", categories=["Running"], text="Grippy sole."))
    'Trail shoe. Running cat_running. Grippy sole.'
    """
    parts = []
    if item.title:
        parts.append(item.title.strip())
    if item.categories:
        cats = " ".join(item.categories)
        if category_tokens:
            cats += " " + " ".join(category_token(c) for c in item.categories)
        parts.append(cats)
    if item.text:
        parts.append(item.text.strip())
    return ". ".join(p.rstrip(".") for p in parts if p) + ("." if parts else "")


def has_content(item: HasContent) -> bool:
    """True when the item carries anything an encoder can read."""
    return bool(item.title or item.text or item.categories or item.attributes)
