"""The render spec: a short, stable hash of everything that decides a photo's output bytes.

The ladder's definition, the look's recipe, the strength, the encoder settings, and
:data:`PIPELINE_VERSION`, bumped by hand whenever decoding, resizing or colour conversion
changes what the same upload renders to. Every ready photo records the spec it was rendered
with, so "stale" is a comparison, not a guess (``photopipe reprocess --stale``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import lru_cache

import filters
from pipeline.core import ladders
from pipeline.settings import Encoding

# Bump when the same upload and options would render to other bytes for a reason the other
# inputs of the spec do not capture (decoder, resampling, colour conversion, metadata policy).
PIPELINE_VERSION = 2  # 2: every render records its placeholder
# Bump when the looks' passes render the same recipe to other pixels (2: Pillow's C passes and
# colour cubes, within the browser bound of the exact evaluation but not equal to it; 3: the fused
# kernel, equal to the exact evaluation for all but the two looks that keep a colour cube).
LOOKS_VERSION = 3
SPEC_LENGTH = 12


@lru_cache(maxsize=1024)
def render_spec(ladder: str, look: str | None, strength: float, encoding: Encoding) -> str:
    """The spec of rendering a photo with these options (12 hex digits).

    Raises:
        ValueError: an unknown ladder or look.
    """
    described = {
        "pipeline": PIPELINE_VERSION,
        "ladder": [dataclasses.asdict(r) for r in ladders.get(ladder)],
        "look": None if look is None else [LOOKS_VERSION, repr(filters.recipe(look))],
        "strength": round(float(strength), 6) if look is not None else None,
        "encoding": dataclasses.asdict(encoding),
    }
    payload = json.dumps(described, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:SPEC_LENGTH]
