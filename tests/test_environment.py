"""The venv is what the project promises: pillow-simd with every codec photopipe needs."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import PIL
import pytest
from PIL import features


def test_pil_is_pillow_simd() -> None:
    dist = importlib.metadata.distribution("pillow-simd")
    files = {Path(str(dist.locate_file(f))).resolve() for f in dist.files or ()}
    assert Path(PIL.__file__).resolve() in files
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("pillow")


@pytest.mark.parametrize("feature", ["jpg", "webp", "zlib", "littlecms2"])
def test_codec_is_built_in(feature: str) -> None:
    assert features.check(feature), feature


def test_jpeg_is_libjpeg_turbo() -> None:
    assert features.check_feature("libjpeg_turbo")
