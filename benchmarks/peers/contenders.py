"""The alternatives to photopipe, run in the peers' venv (stock Pillow, pilgram, pyvips).

    python contenders.py naive|pyvips REPEATS IMAGE...  ->  JSON on stdout

Both produce what photopipe produces for the `default` ladder and the clarendon look: w1080
(JPEG q85 4:2:0 baseline and WebP q80 method 4), w640, w320 and sq150 JPEGs, upright, with no
metadata. The process is pinned to one core by the caller.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for `filters` (numpy only)

from benchmarks.common import peak_rss_mb

WIDTHS = (1080, 640, 320)


def naive(data: bytes) -> dict[str, bytes]:
    """Stock Pillow + pilgram: full decode, every rendition resized from full size."""
    import pilgram
    from PIL import Image, ImageOps

    full = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    outputs = {}
    for width in WIDTHS:
        size = (width, round(full.height * width / full.width))
        look = pilgram.clarendon(full.resize(size, Image.Resampling.LANCZOS))
        outputs[f"w{width}.jpg"] = _pil(look, "JPEG")
        if width == 1080:
            outputs["w1080.webp"] = _pil(look, "WEBP")
    side = min(full.size)
    box = ((full.width - side) // 2, (full.height - side) // 2)
    square = full.resize((150, 150), Image.Resampling.LANCZOS,
                         box=(*box, box[0] + side, box[1] + side))
    outputs["sq150.jpg"] = _pil(pilgram.clarendon(square), "JPEG")
    return outputs


def _pil(image: object, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=85, subsampling=2)  # type: ignore[attr-defined]
    else:
        image.save(buffer, "WEBP", quality=80, method=4)  # type: ignore[attr-defined]
    return buffer.getvalue()


def vips(data: bytes) -> dict[str, bytes]:
    """pyvips: shrink-on-load and auto-rotate, the look in numpy once, cascaded renditions."""
    import numpy as np
    import pyvips

    import filters

    w1080 = pyvips.Image.thumbnail_buffer(data, 1080, height=100_000, size="down")
    look = pyvips.Image.new_from_array(filters.apply(np.ascontiguousarray(w1080.numpy()),
                                                     "clarendon"), interpretation="srgb")
    w640 = look.thumbnail_image(640, height=100_000, size="down")
    w320 = w640.thumbnail_image(320, height=100_000, size="down")
    sq150 = w320.thumbnail_image(150, height=150, crop="centre", size="down")
    jpeg: dict[str, object] = {"Q": 85, "subsample_mode": "on", "keep": "none",
                               "optimize_coding": False, "interlace": False}
    return {"w1080.jpg": look.jpegsave_buffer(**jpeg),
            "w1080.webp": look.webpsave_buffer(Q=80, effort=4, keep="none"),
            "w640.jpg": w640.jpegsave_buffer(**jpeg), "w320.jpg": w320.jpegsave_buffer(**jpeg),
            "sq150.jpg": sq150.jpegsave_buffer(**jpeg)}


def main(name: str, repeats: str, *paths: str) -> None:
    function: Callable[[bytes], dict[str, bytes]] = {"naive": naive, "pyvips": vips}[name]
    uploads = [Path(p).read_bytes() for p in paths]
    function(uploads[0])
    runs = []
    for _ in range(int(repeats)):
        started, cpu = time.perf_counter(), time.process_time()
        for data in uploads:
            function(data)
        runs.append({"seconds": time.perf_counter() - started,
                     "cpu_seconds": time.process_time() - cpu, "images": len(uploads)})
    json.dump({"runs": runs, "versions": _versions(name),
               "peak_rss_mb": peak_rss_mb(),
               "sizes": {k: len(v) for k, v in function(uploads[0]).items()}}, sys.stdout)


def _versions(name: str) -> dict[str, str]:
    import PIL

    versions = {"pillow": PIL.__version__}
    if name == "pyvips":
        import pyvips

        versions["pyvips"] = pyvips.__version__
        versions["libvips"] = ".".join(str(pyvips.version(i)) for i in range(3))
    return versions


if __name__ == "__main__":
    main(*sys.argv[1:])
