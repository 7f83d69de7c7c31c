"""The HTML a page shows a photo with, from the API's photo document alone (no request to the
store, no existence check at render time: the document says what exists).

A ready photo is a ``<picture>``: a WebP ``<source>`` and a JPEG ``<img>``, each with a
``srcset`` of its renditions of the largest's shape (width descriptors and ``sizes``; ``1x``/
``2x`` for a ladder of squares only, shown at half the largest), ``width``/``height`` (the box
is laid out before a byte arrives), ``loading="lazy"`` and ``decoding="async"``, and the
placeholder (its colour, and its ThumbHash drawn into a small PNG data URL) as the image's
background until it loads. A photo not ready is a box of its aspect with the placeholder, and
no image URL at all. Every attribute is escaped.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping, Sequence
from functools import lru_cache
from html import escape
from typing import Any

from PIL import Image

from pipeline.core.thumbhash import thumbhash_to_rgba


def picture(document: Mapping[str, Any], *, sizes: str = "100vw", alt: str = "",
            css_class: str | None = None) -> str:
    """The markup of the photo ``document`` (as ``GET /v1/photos/{id}`` answers it)."""
    shown = document.get("placeholder")
    background = _background(shown)
    renditions = document.get("renditions") or []
    if document.get("status") != "ready" or not renditions:
        return _box(shown, background, alt, css_class)
    jpeg = _same_shape([r for r in renditions if r["format"] == "jpg"])
    webp = _same_shape([r for r in renditions if r["format"] == "webp"], like=jpeg[0])
    squares = all(r["width"] == r["height"] for r in renditions)
    width, height = jpeg[0]["width"], jpeg[0]["height"]
    if squares and len({r["width"] for r in jpeg}) > 1:  # shown at half the largest: 1x, 2x
        width = height = max(1, width // 2)
    img = {"src": jpeg[0]["url"], "srcset": _srcset(jpeg, squares, width),
           "sizes": None if squares else sizes, "width": str(width), "height": str(height),
           "alt": alt, "loading": "lazy", "decoding": "async", "class": css_class,
           "style": background}
    source = "" if not webp else _tag("source", {
        "type": "image/webp", "srcset": _srcset(webp, squares, width),
        "sizes": None if squares else sizes})
    return f"<picture>{source}{_tag('img', img)}</picture>"


def _same_shape(renditions: Sequence[Mapping[str, Any]],
                like: Mapping[str, Any] | None = None) -> list[Mapping[str, Any]]:
    """The renditions of the first one's shape (or ``like``'s), largest first, one of each
    width (a photo smaller than a ladder has renditions of the same size): a grid square is
    not a smaller version of a wide picture."""
    if not renditions:
        return []
    first = like or renditions[0]
    shape = first["width"] / max(1, first["height"])
    found: dict[int, Mapping[str, Any]] = {}
    for r in renditions:
        if abs(r["width"] / max(1, r["height"]) - shape) < 0.02:
            found.setdefault(int(r["width"]), r)
    return [found[w] for w in sorted(found, reverse=True)]


def _srcset(renditions: Sequence[Mapping[str, Any]], squares: bool, shown: int) -> str:
    if squares:
        return ", ".join(f"{r['url']} {r['width'] / shown:g}x" for r in renditions
                         if r["width"] >= shown)
    return ", ".join(f"{r['url']} {r['width']}w" for r in renditions)


def _box(shown: Mapping[str, Any] | None, background: str | None, alt: str,
         css_class: str | None) -> str:
    """A photo not ready: its aspect and placeholder, nothing to fetch."""
    style = "; ".join(s for s in (
        None if shown is None else f"aspect-ratio: {float(shown['aspect']):g}",
        background) if s)
    return _tag("div", {"class": css_class, "role": "img", "aria-label": alt,
                        "style": style or None}) + "</div>"


def _background(shown: Mapping[str, Any] | None) -> str | None:
    if shown is None:
        return None
    colour = _colour(str(shown["color"]))
    try:
        drawn = _drawn(str(shown["thumbhash"]))
    except (ValueError, binascii.Error):  # not a ThumbHash: the colour alone
        return f"background: {colour}"
    return f"background: {colour} url({drawn}) center / cover no-repeat"


def _colour(value: str) -> str:
    """The placeholder's colour, if it is one (``#rrggbb``); else nothing more than grey."""
    digits = value.removeprefix("#")
    return value if len(digits) == 6 and all(c in "0123456789abcdef" for c in digits) \
        else "#808080"


@lru_cache(maxsize=4096)
def _drawn(thumbhash: str) -> str:
    """The ThumbHash drawn (at most 32 pixels a side) as a PNG data URL."""
    width, height, rgba = thumbhash_to_rgba(base64.b64decode(thumbhash, validate=True))
    buffer = io.BytesIO()
    Image.frombytes("RGBA", (width, height), rgba).save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _tag(name: str, attributes: Mapping[str, str | None]) -> str:
    pairs = "".join(f' {key}="{escape(value, quote=True)}"'
                    for key, value in attributes.items() if value is not None)
    return f"<{name}{pairs}>"
