"""pipeline.web.picture: the markup a page shows a photo with, from its document alone."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from pipeline.web import picture

PLACEHOLDER = {"thumbhash": "kQgGDYIIapeRhpdhe2aah7X3Kgtc", "color": "#504935", "aspect": 1.3333}


def rendition(name: str, fmt: str, width: int, height: int) -> dict[str, Any]:
    return {"name": name, "format": fmt, "width": width, "height": height, "bytes": 1,
            "url": f"https://cdn.example/p/{name}.{fmt}?sig=a&b=c"}


DEFAULT: dict[str, Any] = {
    "photo_id": "1", "status": "ready", "placeholder": PLACEHOLDER, "renditions": [
        rendition("w1080", "jpg", 1080, 810), rendition("w1080", "webp", 1080, 810),
        rendition("w640", "jpg", 640, 480), rendition("w320", "jpg", 320, 240),
        rendition("sq150", "jpg", 150, 150)]}
CLASSIC: dict[str, Any] = {
    "photo_id": "2", "status": "ready", "placeholder": {**PLACEHOLDER, "aspect": 1.0},
    "renditions": [rendition("sq612", "jpg", 612, 612), rendition("sq306", "jpg", 306, 306),
                   rendition("sq150", "jpg", 150, 150)]}


class Tags(HTMLParser):
    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_a_ready_photo_is_a_picture_of_webp_and_jpeg_by_width() -> None:
    markup = picture(DEFAULT, sizes="(max-width: 600px) 100vw, 600px", alt="A beach",
                     css_class="feed-photo")
    (tag, _), (source_tag, source), (img_tag, img) = Tags(markup).tags
    assert (tag, source_tag, img_tag) == ("picture", "source", "img")
    assert source == {"type": "image/webp", "sizes": "(max-width: 600px) 100vw, 600px",
                      "srcset": "https://cdn.example/p/w1080.webp?sig=a&b=c 1080w"}
    assert img["srcset"] == ("https://cdn.example/p/w1080.jpg?sig=a&b=c 1080w, "
                             "https://cdn.example/p/w640.jpg?sig=a&b=c 640w, "
                             "https://cdn.example/p/w320.jpg?sig=a&b=c 320w")  # no square
    assert img["src"] == "https://cdn.example/p/w1080.jpg?sig=a&b=c"
    assert (img["width"], img["height"]) == ("1080", "810")
    assert (img["loading"], img["decoding"], img["alt"], img["class"]) == (
        "lazy", "async", "A beach", "feed-photo")
    assert img["sizes"] == "(max-width: 600px) 100vw, 600px"
    style = img["style"] or ""
    assert style.startswith("background: #504935 url(data:image/png;base64,")
    assert "&amp;" in markup and "&b=c" not in markup  # the URLs' ampersands escaped


def test_a_ladder_of_squares_is_shown_at_half_its_largest_with_1x_and_2x() -> None:
    (_, _), (img_tag, img) = Tags(picture(CLASSIC)).tags
    assert img_tag == "img" and "sizes" not in img
    assert img["srcset"] == ("https://cdn.example/p/sq612.jpg?sig=a&b=c 2x, "
                             "https://cdn.example/p/sq306.jpg?sig=a&b=c 1x")
    assert (img["width"], img["height"]) == ("306", "306")


@pytest.mark.parametrize("status", ["queued", "processing", "failed"])
def test_a_photo_not_ready_is_a_box_of_its_aspect_with_nothing_to_fetch(status: str) -> None:
    document = {**DEFAULT, "status": status, "renditions": []}
    markup = picture(document, alt="Soon")
    ((tag, box),) = Tags(markup).tags
    assert tag == "div" and box["role"] == "img" and box["aria-label"] == "Soon"
    assert (box["style"] or "").startswith("aspect-ratio: 1.3333; background: #504935 url(")
    assert "https:" not in markup and "src" not in markup
    bare = Tags(picture({**document, "placeholder": None})).tags
    assert bare == [("div", {"role": "img", "aria-label": ""})]


def test_hostile_text_stays_text() -> None:
    hostile = '"><script>alert(1)</script><img src=x onerror="alert(2)'
    document = {**DEFAULT, "renditions": [
        {**r, "url": r["url"] + '"><script>x</script>'} for r in DEFAULT["renditions"]],
        "placeholder": {**PLACEHOLDER, "color": "red;}</style><script>y</script>",
                        "thumbhash": "not base64!"}}
    markup = picture(document, alt=hostile, css_class=hostile, sizes=hostile)
    assert "<script" not in markup and "onerror=\"" not in markup
    tags = Tags(markup).tags
    assert [t for t, _ in tags] == ["picture", "source", "img"]
    img = tags[2][1]
    assert img["alt"] == hostile and img["class"] == hostile and img["sizes"] == hostile
    assert img["style"] == "background: #808080"  # neither colour nor hash was one


def test_a_photo_smaller_than_its_ladder_lists_each_size_once() -> None:
    """Never upscaled: a 150-pixel photo's classic renditions are all 150 pixels (and a
    1-pixel one is shown at 1)."""
    for side in (150, 1):
        small = {**CLASSIC, "renditions": [
            {**r, "width": side, "height": side} for r in CLASSIC["renditions"]]}
        (_, _), (_, img) = Tags(picture(small)).tags
        assert img["srcset"] == "https://cdn.example/p/sq612.jpg?sig=a&b=c 1x"
        assert (img["width"], img["height"]) == (str(side), str(side))
