"""pipeline.render on real photos: upright, at the right sizes, with no metadata left."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import piexif
import pytest
from PIL import Image, ImageCms, ImageOps

import pipeline
from pipeline import errors
from tests.helpers import CORPUS, PHOTOS, manifest, metadata_found, pixels, thumb

DEFAULT_FILES = ["w1080.jpg", "w1080.webp", "w640.jpg", "w320.jpg", "sq150.jpg"]
FIXTURE_PHOTOS = sorted((PHOTOS / "real").glob("*.jpg")) + sorted(
    (PHOTOS / "orientation").glob("*.jpg"))
CORPUS_PHOTOS = sorted((CORPUS / "real").glob("*.jpg")) + sorted(
    (CORPUS / "orientation").glob("*.jpg"))


def _upright_size(path: Path) -> tuple[int, int]:
    row = manifest(path.parents[1])[f"{path.parent.name}/{path.name}"]
    width, height = int(row["width"]), int(row["height"])
    swap = row["exif_orientation"] in ("5", "6", "7", "8")
    return (height, width) if swap else (width, height)


def _expected(name: str, width: int, height: int) -> tuple[int, int]:
    size = int(name.lstrip("wsq"))
    if name.startswith("sq"):
        side = min(size, width, height)
        return side, side
    out = min(size, width)
    return out, round(height * out / width)


def _check_photo(path: Path) -> None:
    rendered = pipeline.render(path.read_bytes())
    assert sorted(rendered.outputs) == sorted(DEFAULT_FILES)
    width, height = _upright_size(path)
    for output in rendered.files:
        assert metadata_found(output.data) == [], output.filename
        with Image.open(io.BytesIO(output.data)) as image:
            assert not image.getexif(), output.filename
            assert image.size == (output.width, output.height)
            assert image.mode == "RGB"
        expected = _expected(output.name, width, height)
        assert abs(output.width - expected[0]) <= 1 and abs(output.height - expected[1]) <= 1
    exif = piexif.load(rendered.outputs["w1080.jpg"])
    assert not any(exif[ifd] for ifd in ("0th", "Exif", "GPS", "1st")) and not exif["thumbnail"]


@pytest.mark.parametrize("path", FIXTURE_PHOTOS, ids=lambda p: p.name)
def test_fixture_photo_renders_upright_sized_and_clean(path: Path) -> None:
    _check_photo(path)


@pytest.mark.parametrize("path", CORPUS_PHOTOS, ids=lambda p: p.name)
def test_corpus_photo_renders_upright_sized_and_clean(path: Path) -> None:
    _check_photo(path)


def test_corpus_is_present() -> None:
    assert len(CORPUS_PHOTOS) >= 40, f"expected the shared corpus at {CORPUS}"


@pytest.mark.parametrize("look", [None, "mayfair"])  # mayfair: an off-centre radial gradient
@pytest.mark.parametrize("subject", ["landscape", "portrait"])
def test_orientation_examples_show_the_same_picture(subject: str, look: str | None) -> None:
    paths = sorted((CORPUS / "orientation").glob(f"{subject}_*.jpg"))
    reference = thumb(pipeline.render(paths[0].read_bytes(), filter=look).outputs["w320.jpg"])
    mirrored = reference[:, ::-1]
    # The metric tells a mirrored picture apart from the same one by a wide margin.
    assert np.abs(reference - mirrored).mean() > 20
    for path in paths[1:]:
        other = thumb(pipeline.render(path.read_bytes(), filter=look).outputs["w320.jpg"])
        assert np.abs(reference - other).mean() < 4, path.name


def test_gps_is_gone_from_every_output_of_every_gps_file() -> None:
    rows = manifest(CORPUS).values()
    gps = [CORPUS / r["path"] for r in rows if r["has_gps"] == "yes"]
    assert len(gps) >= 14
    for path in gps:
        try:
            rendered = pipeline.render(path.read_bytes())
        except errors.ImageRejected:
            continue  # rejected uploads produce no output at all
        for data in rendered.outputs.values():
            assert metadata_found(data) == []
            with Image.open(io.BytesIO(data)) as image:
                assert not image.getexif().get_ifd(0x8825)  # the GPS IFD


def test_classic_ladder_is_square() -> None:
    data = (PHOTOS / "real" / "apple_iphone4_phone_gps.jpg").read_bytes()
    rendered = pipeline.render(data, ladder="classic")
    assert [(f.filename, f.width, f.height) for f in rendered.files] == [
        ("sq612.jpg", 612, 612), ("sq306.jpg", 306, 306), ("sq150.jpg", 150, 150)]


def test_never_upscales_and_square_takes_the_centre() -> None:
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste((0, 0, 255), (100, 0, 200, 100))  # blue centre third
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    rendered = pipeline.render(buffer.getvalue())
    sizes = {f.filename: (f.width, f.height) for f in rendered.files}
    assert sizes["w1080.jpg"] == (300, 100) and sizes["w640.jpg"] == (300, 100)
    assert sizes["sq150.jpg"] == (100, 100)
    square = pixels(rendered.outputs["sq150.jpg"])
    assert square[10:90, 10:90, 2].mean() > 240 and square[10:90, 10:90, 0].mean() < 15


def test_panorama_keeps_a_full_grid_square() -> None:
    image = Image.new("RGB", (6000, 400), (90, 120, 30))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    sizes = {f.filename: (f.width, f.height) for f in pipeline.render(buffer.getvalue()).files}
    assert sizes["w1080.jpg"] == (1080, 72) and sizes["sq150.jpg"] == (150, 150)


def test_transparency_is_flattened_onto_white() -> None:
    image = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    image.paste((255, 0, 0, 255), (16, 16, 48, 48))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    out = pixels(pipeline.render(buffer.getvalue()).outputs["w1080.jpg"])
    assert out[:8, :8].min() > 245
    assert out[24:40, 24:40, 0].mean() > 240 and out[24:40, 24:40, 1].mean() < 15


FORMATS = {p.name: p for p in sorted(CORPUS.glob("formats/*"))}
UNSUPPORTED = {"hopper_lzw.tif", "rgba_16bit.tiff", "iphone11_gps.heic", "iphone_xs_gps.avif"}


def _reference(path: Path) -> np.ndarray:
    """An independent decode: first frame, upright, alpha on white, through ICC to sRGB."""
    with Image.open(path) as image:
        image.seek(0)
        icc = image.info.get("icc_profile")
        frame = ImageOps.exif_transpose(image.copy())
    if frame.mode in ("CMYK", "RGB") and icc:
        converted = ImageCms.profileToProfile(
            frame, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"),
            outputMode="RGB")
        assert converted is not None
        frame = converted
    if frame.mode == "I;16":
        wide = np.asarray(frame)
        grey = np.round(wide / 257).astype(np.uint8)
        alpha = np.where(wide == frame.info.get("transparency", -1), 0, 255).astype(np.uint8)
        frame = Image.fromarray(np.dstack([grey, alpha]))
    rgba = frame.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.float32)


def _blocks(image: np.ndarray, size: int = 4) -> np.ndarray:
    height, width = (image.shape[0] // size) * size, (image.shape[1] // size) * size
    cut = image[:height, :width]
    blocks: np.ndarray = cut.reshape(height // size, size, width // size, size, 3).mean(axis=(1, 3))
    return blocks


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_renders_correctly_or_is_unsupported(name: str) -> None:
    data = FORMATS[name].read_bytes()
    if name in UNSUPPORTED:
        with pytest.raises(errors.UnsupportedFormat):
            pipeline.render(data)
        return
    rendered = pipeline.render(data)
    reference = _reference(FORMATS[name])
    out = pixels(rendered.outputs["w1080.webp"])
    if out.shape != reference.shape:
        reference = np.asarray(Image.fromarray(reference.astype(np.uint8)).resize(
            (out.shape[1], out.shape[0]), Image.Resampling.LANCZOS), dtype=np.float32)
    # Compared as 4x4 block means, so that codec ringing on tiny synthetic cards does not count.
    assert np.abs(_blocks(out) - _blocks(reference)).mean() < 3, name
    assert all(metadata_found(d) == [] for d in rendered.outputs.values())


def test_render_rejects_bad_arguments() -> None:
    data = (PHOTOS / "real" / "casio_ex-s1.jpg").read_bytes()
    with pytest.raises(ValueError, match="ladder"):
        pipeline.render(data, ladder="huge")
    with pytest.raises(ValueError, match="strength"):
        pipeline.render(data, strength=1.5)
    with pytest.raises(ValueError, match=r"unknown filter .no-such-look"):
        pipeline.render(data, filter="no-such-look")


def test_the_look_is_applied_once_on_the_largest_rendition(monkeypatch: pytest.MonkeyPatch) -> None:
    import filters

    seen: list[tuple[int, int]] = []
    real = filters.apply_image

    def spy(image: Image.Image, name: str, strength: float = 1.0) -> Image.Image:
        seen.append(image.size)
        return real(image, name, strength)

    monkeypatch.setattr(filters, "apply_image", spy)
    data = (PHOTOS / "real" / "apple_iphone4_phone_gps.jpg").read_bytes()
    rendered = pipeline.render(data, filter="toaster", strength=0.8)
    assert seen == [(1080, 807)]
    plain = pipeline.render(data)
    # Smaller renditions cascade from the filtered picture: they carry the look too.
    toasted, untouched = pixels(rendered.outputs["sq150.jpg"]), pixels(plain.outputs["sq150.jpg"])
    assert np.abs(toasted - untouched).mean() > 10
    assert (rendered.filter, rendered.strength) == ("toaster", 0.8)
