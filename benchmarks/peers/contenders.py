"""The alternatives to photopipe, run in the peers' venv (stock Pillow, pilgram, pyvips).

    python contenders.py naive|pyvips REPEATS IMAGE...  ->  JSON on stdout

Both produce what photopipe produces for the `default` ladder and the clarendon look: w1080
(progressive JPEG q85 4:2:0 and WebP q80 method 4), w640, w320 and sq150 progressive JPEGs,
upright, with no metadata. The process is pinned to one core by the caller.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
        image.save(buffer, "JPEG", quality=85, subsampling=2,  # type: ignore[attr-defined]
                   progressive=True, optimize=True)
    else:
        image.save(buffer, "WEBP", quality=80, method=4)  # type: ignore[attr-defined]
    return buffer.getvalue()


def vips(data: bytes) -> dict[str, bytes]:
    """pyvips at its best for these outputs: shrink-on-load at the largest power of two that
    still covers w1080, auto-rotate, sRGB, one lanczos3 resize to w1080, the look as vips
    operations (:func:`vips_look`), then each smaller rendition from the one above it."""
    import pyvips

    header = pyvips.Image.new_from_buffer(data, "")
    orientation = header.get("orientation") if header.get_typeof("orientation") else 1
    upright = (header.height, header.width) if orientation >= 5 else \
        (header.width, header.height)
    shrink = 1
    while shrink < 8 and upright[0] // (shrink * 2) >= 1080:
        shrink *= 2
    image = pyvips.Image.new_from_buffer(data, "", shrink=shrink).autorot()
    if image.get_typeof("icc-profile-data"):
        image = image.icc_transform("srgb")
    if image.hasalpha():
        image = image.flatten(background=255)
    if image.bands < 3:
        image = image.colourspace("srgb")
    # Each rendition feeds two consumers (its file and the next rendition): held in memory,
    # or libvips's lazy pipeline would decode and resize again for each. None is upscaled.
    w1080 = vips_look(_down(image, 1080)).copy_memory()
    w640 = _down(w1080, 640).copy_memory()
    w320 = _down(w640, 320).copy_memory()
    side = min(w320.width, w320.height)
    square = w320.crop((w320.width - side) // 2, (w320.height - side) // 2, side, side)
    sq150 = _down(square, 150)
    jpeg: dict[str, object] = {"Q": 85, "subsample_mode": "on", "keep": "none",
                               "optimize_coding": True, "interlace": True}
    return {"w1080.jpg": w1080.jpegsave_buffer(**jpeg),
            "w1080.webp": w1080.webpsave_buffer(Q=80, effort=4, keep="none"),
            "w640.jpg": w640.jpegsave_buffer(**jpeg), "w320.jpg": w320.jpegsave_buffer(**jpeg),
            "sq150.jpg": sq150.jpegsave_buffer(**jpeg)}


def _down(image: Any, width: int) -> Any:
    """``image`` resized with lanczos3 to ``width`` wide, or as it is if it is not wider."""
    return image.resize(width / image.width, kernel="lanczos3") if image.width > width \
        else image


def vips_look(image: Any) -> Any:
    """clarendon in libvips: photopipe's compiled recipe (a per-channel table, then a colour
    matrix) as ``maplut`` and ``recomb``, rounded to 8 bits once, as the exact evaluation
    does (no interpolated colour cube)."""
    plan = _clarendon_plan()
    out = image.maplut(plan[0])
    for matrix in plan[1]:
        out = out.recomb(matrix)
    return (out * 255 + 0.5).cast("uchar")


_PLAN: list[tuple[Any, list[Any]]] = []


def _clarendon_plan() -> tuple[Any, list[Any]]:
    if not _PLAN:
        import numpy as np
        import pyvips

        from filters.compile import plan_for
        from filters.looks import RECIPES

        plan = plan_for(RECIPES["clarendon"], 1, 1)
        matrices = [op for op in plan.tail if isinstance(op, np.ndarray)]
        if plan.states is not None or plan.flat_first is not None or \
                len(matrices) != len(plan.tail):
            raise SystemExit("the vips contender's look is a table and matrices only")
        table = np.ascontiguousarray(plan.table.T[None, :, :], dtype=np.float32)  # 256 x 1, 3
        _PLAN.append((pyvips.Image.new_from_array(table),
                      [pyvips.Image.new_from_array(m.tolist()) for m in matrices]))
    return _PLAN[0]


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
