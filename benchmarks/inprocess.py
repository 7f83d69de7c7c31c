"""photopipe and the floor, timed in a process of their own (run by benchmarks.pipeline).

    python -m benchmarks.inprocess photopipe|floor|stages REPEATS IMAGE...  ->  JSON on stdout

``floor`` is the irreducible work alone: the JPEG decode at the DCT scale the pipeline needs, one
resize to the working size, and the five encodes. ``stages`` splits photopipe's CPU time.
JPEG here is libjpeg-turbo's progressive q85, photopipe's setting with
``PHOTOPIPE_JPEG_ENCODER=libjpeg-turbo``: the peers write the same files (jpegli, photopipe's
default, is compared with it in benchmarks/perceptual.py and benchmarks/peak.py).
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import filters
import pipeline
from benchmarks.common import peak_rss_mb
from pipeline.core import ladders
from pipeline.core.decode import decode, read_orientation
from pipeline.core.encode import encode
from pipeline.core.renditions import render_ladder
from pipeline.settings import Encoding, Limits

LOOK = "clarendon"
SPEC = ladders.get("default")
SAME_FILES = Encoding(jpeg_encoder="libjpeg-turbo")  # as the peers encode


def photopipe(data: bytes) -> None:
    pipeline.render(data, filter=LOOK, encoding=SAME_FILES)


def _decoded(data: bytes) -> Image.Image:
    return decode(data, Limits(), need=ladders.need(SPEC),
                  fit=lambda w, h: ladders.working_size(w, h, SPEC)).image


def floor_parts(data: bytes) -> dict[str, float]:
    """CPU seconds of each irreducible step, on this upload."""
    with Image.open(io.BytesIO(data)) as image:
        swap = read_orientation(image) >= 5  # the pipeline's draft box is in stored axes
        started = time.process_time()
        need = ladders.need(SPEC)
        image.draft("RGB", need[::-1] if swap else need)
        image.load()
        decoded = time.process_time()
        upright = image.size[::-1] if swap else image.size
        working = ladders.working_size(*upright, SPEC)
        resized = image.resize(working[::-1] if swap else working, Image.Resampling.LANCZOS)
        done_resize = time.process_time()
    if swap:
        resized = resized.transpose(Image.Transpose.TRANSPOSE)  # not timed: shapes only
    outputs = [(r, i) for r, i in render_ladder(resized, SPEC)]
    encode_start = time.process_time()
    for rendition, picture in outputs:
        for fmt in rendition.formats:
            encode(picture, fmt, SAME_FILES)
    return {"decode": decoded - started, "resize": done_resize - decoded,
            "encode": time.process_time() - encode_start}


def stages(data: bytes) -> dict[str, float]:
    """CPU seconds of photopipe's own stages, on this upload."""
    marks = [time.process_time()]
    working = _decoded(data)
    marks.append(time.process_time())
    looked = filters.apply_image(working, LOOK)
    marks.append(time.process_time())
    made = render_ladder(looked, SPEC)
    marks.append(time.process_time())
    for rendition, picture in made:
        for fmt in rendition.formats:
            encode(picture, fmt, SAME_FILES)
    marks.append(time.process_time())
    names = ("decode+resize+orient", "look", "ladder", "encode")
    return {n: b - a for n, a, b in zip(names, marks, marks[1:], strict=False)}


def main(mode: str, repeats: str, *paths: str) -> None:
    uploads = [Path(p).read_bytes() for p in paths]
    result: dict[str, Any] = {}
    if mode in ("floor", "stages"):
        measure = floor_parts if mode == "floor" else stages
        per_image = [[measure(d) for d in uploads] for _ in range(int(repeats))]
        result["stages"] = {k: float(np.median([sum(img[k] for img in run) / len(uploads)
                                                for run in per_image])) for k in per_image[0][0]}
    else:  # photopipe, with the floor measured in between, in the same process and minute
        run: Callable[[bytes], None] = photopipe
        run(uploads[0])
        result["runs"], result["floor_cpu_seconds"] = [], []
        for _ in range(int(repeats)):
            started, cpu = time.perf_counter(), time.process_time()
            for data in uploads:
                run(data)
            result["runs"].append({"seconds": time.perf_counter() - started,
                                   "cpu_seconds": time.process_time() - cpu,
                                   "images": len(uploads)})
            result["floor_cpu_seconds"] += [sum(floor_parts(d).values()) for d in uploads]
    result["peak_rss_mb"] = peak_rss_mb()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
