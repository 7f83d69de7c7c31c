"""The encoders as a measured choice: bytes, CPU and quality of each JPEG and WebP setting.

    python -m benchmarks.encoding [--repeats N] [--corpus DIR]

Every real photo of ../shared/photos/real is rendered to the default ladder's largest
rendition (w1080, as the pipeline makes it, no look), then encoded at the ladder's qualities
(JPEG q85 4:2:0, WebP q80) in each variant: JPEG baseline with the standard Huffman tables,
with optimised tables, and progressive (libjpeg-turbo optimises a progressive file's tables
too); WebP methods 0 to 6. For each: the bytes (summed over the photos, and relative to the
first variant of its format), the encode's CPU time (median over the photos of each photo's
fastest of ``--repeats``) and SSIM of the decoded file against the w1080 source, on luma
(scikit-image's ``structural_similarity``). Writes benchmarks/results/encoding.{md,json}.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image
from skimage.metrics import structural_similarity

from benchmarks.common import ROOT, machine, write
from pipeline.core import ladders
from pipeline.core.decode import decode
from pipeline.core.renditions import render_ladder
from pipeline.settings import Limits

CORPUS = ROOT.parent / "shared" / "photos" / "real"
JPEG_QUALITY, WEBP_QUALITY = 85, 80
VARIANTS: dict[str, dict[str, Any]] = {
    "JPEG baseline": {"format": "JPEG", "optimize": False, "progressive": False},
    "JPEG optimised Huffman": {"format": "JPEG", "optimize": True, "progressive": False},
    "JPEG progressive": {"format": "JPEG", "optimize": True, "progressive": True},
    **{f"WebP method {m}": {"format": "WEBP", "method": m} for m in range(7)},
}


def w1080(path: Path) -> Image.Image:
    """The photo as the pipeline's largest default rendition (upright sRGB, 1080 wide)."""
    spec = ladders.get("default")
    working = decode(path.read_bytes(), Limits(), need=ladders.need(spec),
                     fit=lambda w, h: ladders.working_size(w, h, spec)).image
    return next(picture for rendition, picture in render_ladder(working, spec)
                if rendition.name == "w1080")


def encode(image: Image.Image, variant: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    if variant["format"] == "JPEG":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling=2,
                   optimize=variant["optimize"], progressive=variant["progressive"])
    else:
        image.save(buffer, "WEBP", quality=WEBP_QUALITY, method=variant["method"])
    return buffer.getvalue()


def luma(image: Image.Image) -> npt.NDArray[np.float64]:
    return np.asarray(image.convert("L"), dtype=np.float64)


def measure_photo(image: Image.Image,
                  repeats: int) -> Iterator[tuple[str, int, float, float]]:
    """(variant, bytes, CPU seconds, SSIM) of every variant on one picture."""
    source = luma(image)
    for name, variant in VARIANTS.items():
        cpu = []
        for _ in range(repeats):
            started = time.process_time()
            data = encode(image, variant)
            cpu.append(time.process_time() - started)
        with Image.open(io.BytesIO(data)) as decoded:
            ssim = structural_similarity(source, luma(decoded), data_range=255)
        yield name, len(data), min(cpu), float(ssim)


def measure(corpus: Path, repeats: int) -> dict[str, Any]:
    photos = sorted(corpus.glob("*.jpg"))
    rows: dict[str, dict[str, list[float]]] = {n: {"bytes": [], "cpu": [], "ssim": []}
                                               for n in VARIANTS}
    megapixels = 0.0
    for path in photos:
        picture = w1080(path)
        megapixels += picture.width * picture.height / 1e6
        for name, size, cpu, ssim in measure_photo(picture, repeats):
            rows[name]["bytes"].append(size)
            rows[name]["cpu"].append(cpu)
            rows[name]["ssim"].append(ssim)
    return {"photos": [p.name for p in photos], "repeats": repeats, "machine": machine(),
            "megapixels": megapixels,
            "variants": {n: {"bytes": int(sum(r["bytes"])),
                             "cpu_ms_median": statistics.median(r["cpu"]) * 1000,
                             "cpu_ms_per_megapixel": sum(r["cpu"]) * 1000 / megapixels,
                             "ssim_mean": statistics.fmean(r["ssim"]),
                             "ssim_min": min(r["ssim"])} for n, r in rows.items()}}


def table(data: dict[str, Any]) -> str:
    variants = data["variants"]
    lines = [f"# Encoders on the w1080 rendition of {len(data['photos'])} real photos", "",
             f"JPEG q{JPEG_QUALITY} 4:2:0 and WebP q{WEBP_QUALITY}, as the default ladder "
             "encodes them; bytes summed over the photos, CPU the median photo's encode "
             f"(fastest of {data['repeats']}) and per megapixel over all "
             f"{data['megapixels']:.1f} MP, SSIM on luma against the w1080 source "
             "(`python -m benchmarks.encoding`).", "",
             "| variant | bytes | vs first of its format | encode CPU ms | CPU ms / MP | "
             "SSIM mean | SSIM worst |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    firsts = {"JPEG": variants["JPEG baseline"]["bytes"],
              "WEBP": variants["WebP method 0"]["bytes"]}
    for name, v in variants.items():
        first = firsts[VARIANTS[name]["format"]]
        lines.append(f"| {name} | {v['bytes']:,} | {v['bytes'] / first:.3f} | "
                     f"{v['cpu_ms_median']:.1f} | {v['cpu_ms_per_megapixel']:.1f} | "
                     f"{v['ssim_mean']:.4f} | "
                     f"{v['ssim_min']:.4f} |")
    lines += ["", f"Machine: {data['machine']}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    data = measure(args.corpus, args.repeats)
    markdown = table(data)
    write("encoding", markdown, data)
    print(markdown)


if __name__ == "__main__":
    main()
