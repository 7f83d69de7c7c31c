"""Mutated real files through render(): outputs, or an ImageRejected with a known code; never
another exception (which would be a bug mislabelled, or a crash), in bounded time."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import render
from pipeline.errors import ImageRejected
from pipeline.settings import Limits
from tests.helpers import PHOTOS

SEEDS = [PHOTOS / "formats" / name for name in (
    "progressive_canon_eos350d.jpg", "palette_trns_interlaced.png", "animated.gif",
    "rgba_lossy.webp", "png16_rgba.png", "cmyk_adobe.jpg")]
CODES = {"unsupported_format", "too_many_pixels", "too_large", "too_many_frames", "truncated",
         "corrupt"}
LIMITS = Limits(max_pixels=4_000_000, max_bytes=2_000_000, max_frames=50)


def _mutate(data: bytes, edits: list[tuple[float, int, int]], cut: float | None) -> bytes:
    """Overwrite runs of bytes (anywhere, headers included), then maybe truncate."""
    out = bytearray(data)
    for where, length, value in edits:
        start = int(where * (len(out) - 1))
        out[start:start + length] = bytes([value]) * len(out[start:start + length])
    return bytes(out[: max(1, int(cut * len(out)))] if cut is not None else out)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.name)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 16), st.integers(0, 255)),
                      max_size=6),
       cut=st.none() | st.floats(0.05, 1))
def test_mutated_files_render_or_are_rejected_with_a_known_code(
        seed: Path, edits: list[tuple[float, int, int]], cut: float | None) -> None:
    data = _mutate(seed.read_bytes(), edits, cut)
    began = time.monotonic()
    try:
        rendered = render(data, ladder="classic", limits=LIMITS)
    except ImageRejected as exc:
        assert exc.code in CODES
        assert "\n" not in str(exc)
    else:
        assert rendered.files and all(f.data for f in rendered.files)
    assert time.monotonic() - began < 10
    # The limits admit 4 MP: no input may make this process's peak grow past what that needs
    # (a bomb slipping past them would take gigabytes).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 2 * 1024 * 1024  # KiB
