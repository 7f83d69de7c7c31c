"""What a page shows of a photo before its thumbnail arrives: a ThumbHash of what the largest
rendition shows (its crop and its look) scaled to at most :data:`BOX` pixels a side, that small
picture's average colour (each pixel weighted by its alpha, as ThumbHash averages), and the
rendition's aspect. Computed once, in the render, from the pixels the largest rendition is
encoded from."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass

from PIL import Image

from pipeline.core.thumbhash import encode

# The small picture's largest side. ThumbHash takes up to 100, but its sums must run in the
# reference's order (see thumbhash.py), so its cost grows with the pixels. Measured in a render
# of the classic ladder (40 ms; benchmarks/placeholder.py): 2.4 % of it at 48 before the colour
# came from the hash's own average, 1.9 % at 48 after, 1.7 % at 40. At 40 the hash of 18 of 23
# corpus photos is the one at 100, and each of the other five has one factor one step off.
BOX = 40


@dataclass(frozen=True)
class Placeholder:
    thumbhash: str  # base64
    color: str  # "#rrggbb"
    aspect: float  # width / height of the largest rendition

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def load(cls, text: str) -> Placeholder:
        found = json.loads(text)
        return cls(str(found["thumbhash"]), str(found["color"]), float(found["aspect"]))


def placeholder(image: Image.Image) -> Placeholder:
    """The placeholder of ``image``, the largest rendition's pixels."""
    width, height = image.size
    small = image
    if max(width, height) > BOX:
        scale = BOX / max(width, height)
        small = image.resize((max(1, round(width * scale)), max(1, round(height * scale))),
                             Image.Resampling.BOX)
    rgba = small.convert("RGBA")
    digest, average = encode(rgba.width, rgba.height, rgba.tobytes())
    colour = "#" + "".join(f"{min(255, max(0, int(255 * v + 0.5))):02x}" for v in average)
    return Placeholder(base64.b64encode(digest).decode(), colour, round(width / height, 4))
