"""The placeholder: computed in the render from the largest rendition's pixels (its crop, its
look), before the renditions are encoded."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipeline.core import rendering
from pipeline.core.placeholder import BOX, Placeholder, placeholder
from pipeline.core.thumbhash import rgba_to_thumbhash


def jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


HALVES = np.concatenate([np.full((600, 400, 3), (220, 20, 20)),
                         np.full((600, 400, 3), (20, 20, 220))], axis=1)  # 800x600


def test_a_render_s_placeholder_is_its_largest_rendition_s() -> None:
    wide = rendering.render(jpeg(HALVES), ladder="default")
    square = rendering.render(jpeg(HALVES), ladder="classic")
    assert wide.placeholder is not None and square.placeholder is not None
    largest = wide.files[0]
    assert wide.placeholder.aspect == round(largest.width / largest.height, 4) == 1.3333
    assert square.placeholder.aspect == 1.0  # the square crop, not the upload
    red, green, blue = (int(wide.placeholder.color[i:i + 2], 16) for i in (1, 3, 5))
    assert abs(red - 120) <= 6 and green <= 30 and abs(blue - 120) <= 6  # half red, half blue
    assert wide.placeholder.thumbhash != square.placeholder.thumbhash


def test_the_look_is_in_the_placeholder() -> None:
    plain = rendering.render(jpeg(HALVES), ladder="classic")
    looked = rendering.render(jpeg(HALVES), ladder="classic", filter="inkwell")
    assert plain.placeholder is not None and looked.placeholder is not None
    red, green, blue = (int(looked.placeholder.color[i:i + 2], 16) for i in (1, 3, 5))
    assert max(red, green, blue) - min(red, green, blue) <= 2  # inkwell is black and white
    assert looked.placeholder.thumbhash != plain.placeholder.thumbhash


@pytest.mark.parametrize("short", [0, 1])
def test_the_placeholder_is_handed_out_before_the_encodes_when_they_are_large(
        monkeypatch: pytest.MonkeyPatch, short: int) -> None:
    """From EARLY_PLACEHOLDER_PIXELS pixels to encode (each file counted: the default ladder's
    w1080 is two), the placeholder comes before the first encode; one pixel short, never."""
    events: list[str] = []
    from pipeline.core.encode import encode

    def counted(*args: Any, **kwargs: Any) -> bytes:
        events.append("encode")
        return encode(*args, **kwargs)

    monkeypatch.setattr(rendering, "encode", counted)
    files = rendering.render(jpeg(HALVES), ladder="default").files
    monkeypatch.setattr(rendering, "EARLY_PLACEHOLDER_PIXELS",
                        sum(f.width * f.height for f in files) + short)
    events.clear()
    rendered = rendering.render(jpeg(HALVES), ladder="default",
                                on_placeholder=lambda p: events.append(p.color))
    assert rendered.placeholder is not None
    encodes = ["encode"] * len(files)
    assert events == (encodes if short else [rendered.placeholder.color, *encodes])


def test_a_612_upload_on_the_classic_ladder_gets_its_placeholder_with_the_renditions() -> None:
    """Instagram's 2011 photo: 0.49 million pixels to encode, under the bar."""
    square = np.random.default_rng(5).integers(0, 256, (612, 612, 3)).astype(np.uint8)
    told: list[Placeholder] = []
    rendered = rendering.render(jpeg(square), ladder="classic", on_placeholder=told.append)
    assert told == [] and rendered.placeholder is not None
    assert sum(f.width * f.height for f in rendered.files) < rendering.EARLY_PLACEHOLDER_PIXELS


def test_the_hash_is_of_the_picture_scaled_to_the_box_with_its_aspect() -> None:
    picture = Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 1000, 3))
                              .astype(np.uint8))
    found = placeholder(picture)
    small = picture.resize((BOX, round(300 * BOX / 1000)), Image.Resampling.BOX)
    rgba = small.convert("RGBA")
    assert base64.b64decode(found.thumbhash) == rgba_to_thumbhash(*rgba.size, rgba.tobytes())
    assert found.aspect == round(1000 / 300, 4)
    tiny = Image.new("RGB", (3, 5), (10, 200, 30))  # already inside the box: as it is
    assert placeholder(tiny).color == "#0ac81e" and placeholder(tiny).aspect == 0.6


def test_transparent_pixels_do_not_colour_it() -> None:
    rgba = np.zeros((10, 20, 4), dtype=np.uint8)
    rgba[:, :10] = (255, 0, 0, 255)  # left: opaque red; right: transparent green
    rgba[:, 10:] = (0, 255, 0, 0)
    assert placeholder(Image.fromarray(rgba, "RGBA")).color == "#ff0000"


def test_it_round_trips_as_json() -> None:
    shown = Placeholder("AQID", "#102030", 1.5)
    assert Placeholder.load(shown.dump()) == shown
