"""Encoders compared at equal perceptual quality: bytes and encode CPU at the SSIMULACRA2 score
libjpeg-turbo reaches as photopipe set it until jpegli became its JPEG encoder.

    python -m benchmarks.perceptual [--corpus DIR] [--processes N]

For every real photo of ../shared/photos/real, at the default ladder's w1080 and w640
renditions (as the pipeline makes them, no look): the target is the SSIMULACRA2 score (the
``ssimulacra2`` package, against the rendition as rendered) of libjpeg-turbo at photopipe's
settings for it (q85 4:2:0, progressive, optimised tables). Each candidate encodes the picture
at four or five qualities; its bytes (on a log scale) and encode CPU are interpolated to the
target score along its curve. Candidates: jpegli (``pyjpegli``, its own defaults), WebP
methods 2 and 4, AVIF (``pillow-avif-plugin``, its own libavif) at speeds 6, 8 and 10. A
photo whose target lies outside a candidate's points is counted apart, not extrapolated.
Left out: pictures under 256 pixels a side (too small for the metric's six scales) and those
today's JPEG already scores 99 or more on (flat ones). Bytes are summed over the photos; CPU
is per megapixel, the same way, each encode timed once in a process of its own
(``--processes`` photos at a time: every candidate shares the same contention). Writes
benchmarks/results/perceptual.{md,json}.
"""

from __future__ import annotations

import argparse
import io
import itertools
import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pillow_avif  # registers AVIF with Pillow (and gives its version below)
import pyjpegli
from PIL import Image
from ssimulacra2 import compute_ssimulacra2

from benchmarks.common import machine, write
from benchmarks.encoding import CORPUS
from pipeline.core import ladders
from pipeline.core.decode import decode
from pipeline.core.renditions import render_ladder
from pipeline.settings import JPEG_QUALITY, Limits

SIZES = ("w1080", "w640")
Encoder = Callable[[Image.Image, int], bytes]


def _pillow(format_: str, **options: Any) -> Encoder:
    def encode(image: Image.Image, quality: int) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format_, quality=quality, **options)
        return buffer.getvalue()
    return encode


def _jpegli(image: Image.Image, quality: int) -> bytes:
    return bytes(pyjpegli.encode(image.tobytes(), image.width, image.height, quality))


BASELINE = ("libjpeg-turbo", _pillow("JPEG", subsampling=2, optimize=True, progressive=True),
            JPEG_QUALITY["libjpeg-turbo"])
JPEGLI = JPEG_QUALITY["jpegli"]  # photopipe's setting
# each candidate's qualities, chosen to bracket the baseline's scores on this corpus
CANDIDATES: dict[str, tuple[Encoder, tuple[int, ...]]] = {
    "jpegli": (_jpegli, tuple(sorted({70, 80, 88, 95, JPEGLI}))),
    "WebP method 2": (_pillow("WEBP", method=2), (70, 80, 88, 96)),
    "WebP method 4": (_pillow("WEBP", method=4), (70, 80, 88, 96)),
    **{f"AVIF speed {s}": (_pillow("AVIF", speed=s), (55, 67, 78, 88, 95)) for s in (6, 8, 10)},
}
# SSIMULACRA2 compares six scales, halving each time: a picture under 256 pixels a side has too
# few for a score (the corpus's 100-pixel thumbnails score -20 to 40 at q95). A picture today's
# JPEG already renders perfectly (a flat one) leaves nothing to compare at.
MIN_SIDE, PERFECT = 256, 99.0


def renditions(path: Path) -> dict[str, Image.Image]:
    """The photo's w1080 and w640 as the default ladder renders them."""
    spec = ladders.get("default")
    working = decode(path.read_bytes(), Limits(), need=ladders.need(spec),
                     fit=lambda w, h: ladders.working_size(w, h, spec)).image
    return {name: picture for rendition, picture in render_ladder(working, spec)
            if (name := rendition.name) in SIZES}


def _timed(encoder: Encoder, image: Image.Image, quality: int) -> tuple[bytes, float]:
    started = time.process_time()
    data = encoder(image, quality)
    return data, time.process_time() - started


def measure_photo(path: Path) -> dict[str, Any]:
    """For each size: the target score, the baseline's bytes and CPU, and each candidate's
    (quality, score, bytes, CPU seconds) points."""
    found: dict[str, Any] = {}
    for size, image in renditions(path).items():
        if min(image.size) < MIN_SIDE:
            continue
        reference = io.BytesIO()
        image.save(reference, "PNG", compress_level=1)

        def score(data: bytes, reference: bytes = reference.getvalue()) -> float:
            return float(compute_ssimulacra2(io.BytesIO(reference), io.BytesIO(data)))

        _, encoder, quality = BASELINE
        data, cpu = _timed(encoder, image, quality)
        row: dict[str, Any] = {"megapixels": image.width * image.height / 1e6,
                               "target": score(data), "bytes": len(data), "cpu": cpu,
                               "candidates": {}}
        if row["target"] >= PERFECT:
            continue
        for name, (encoder, qualities) in CANDIDATES.items():
            points = []
            for q in qualities:
                data, cpu = _timed(encoder, image, q)
                points.append((q, score(data), len(data), cpu))
            row["candidates"][name] = points
        found[size] = row
    return found


def at_target(points: list[tuple[int, float, int, float]],
              target: float) -> tuple[float, float] | None:
    """Bytes and CPU seconds interpolated to ``target`` along the score curve (bytes on a log
    scale), or None when the target is outside the points' scores."""
    ordered = sorted(points, key=lambda p: p[1])
    for (_, s0, b0, c0), (_, s1, b1, c1) in itertools.pairwise(ordered):
        if s0 <= target <= s1:
            t = 0.0 if s1 == s0 else (target - s0) / (s1 - s0)
            return math.exp(math.log(b0) + t * (math.log(b1) - math.log(b0))), c0 + t * (c1 - c0)
    return None


def summarise(photos: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for size in SIZES:
        rows = [p[size] for p in photos if size in p]
        base_bytes = sum(r["bytes"] for r in rows)
        base_cpu = sum(r["cpu"] for r in rows)
        megapixels = sum(r["megapixels"] for r in rows)
        found: dict[str, Any] = {BASELINE[0]: {
            "photos": len(rows), "bytes": base_bytes, "vs_today": 1.0,
            "cpu_ms_per_mp": 1000 * base_cpu / megapixels, "cpu_vs_today": 1.0}}
        for name in CANDIDATES:
            hits = [(r, at_target(r["candidates"][name], r["target"])) for r in rows]
            inside = [(r, hit) for r, hit in hits if hit is not None]
            ours = sum(r["bytes"] for r, _ in inside)
            theirs = sum(hit[0] for _, hit in inside)
            cpu_ours = sum(r["cpu"] for r, _ in inside)
            cpu_theirs = sum(hit[1] for _, hit in inside)
            mp = sum(r["megapixels"] for r, _ in inside)
            found[name] = {"photos": len(inside), "outside": len(rows) - len(inside),
                           "bytes": theirs, "today_bytes_same_photos": ours,
                           "vs_today": theirs / ours if ours else None,
                           "cpu_ms_per_mp": 1000 * cpu_theirs / mp if mp else None,
                           "cpu_vs_today": cpu_theirs / cpu_ours if cpu_ours else None}
        summary[size] = {"photos": len(rows),
                         "targets_mean": sum(r["target"] for r in rows) / len(rows),
                         "megapixels": megapixels, "encoders": found,
                         "jpegli_as_set": _as_set(rows)}
    return summary


def _as_set(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """jpegli at photopipe's quality against libjpeg-turbo at its own, photo by photo."""
    points = [next(p for p in r["candidates"]["jpegli"] if p[0] == JPEGLI) for r in rows]
    deltas = [p[1] - r["target"] for p, r in zip(points, rows, strict=True)]
    return {"quality": JPEGLI, "bytes": sum(p[2] for p in points),
            "vs_today": sum(p[2] for p in points) / sum(r["bytes"] for r in rows),
            "cpu_vs_today": sum(p[3] for p in points) / sum(r["cpu"] for r in rows),
            "score_mean": sum(p[1] for p in points) / len(points),
            "score_delta_mean": sum(deltas) / len(deltas),
            "score_delta_min": min(deltas), "score_delta_max": max(deltas)}


def table(data: dict[str, Any]) -> str:
    lines = ["# Encoders at equal SSIMULACRA2 score", "",
             f"The real photos at the default ladder's w1080 and w640 (of {len(data['photos'])}, "
             "those at least 256 pixels a side there and not flat); each "
             "candidate's bytes and encode CPU interpolated to the score libjpeg-turbo reaches "
             f"at photopipe's settings for it (q{BASELINE[2]} 4:2:0 progressive), photo by "
             "photo (`python -m benchmarks.perceptual`). vs libjpeg-turbo: on the same photos.",
             ""]
    for size, found in data["summary"].items():
        lines += [f"## {size}: {found['photos']} photos (mean target score "
                  f"{found['targets_mean']:.1f}, {found['megapixels']:.1f} MP in all)", "",
                  "| encoder | photos (outside its range) | bytes | vs libjpeg-turbo | "
                  "encode CPU ms / MP | CPU vs libjpeg-turbo |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, row in found["encoders"].items():
            vs = "" if row["vs_today"] is None else f"{row['vs_today']:.3f}"
            cpu = "" if row["cpu_ms_per_mp"] is None else f"{row['cpu_ms_per_mp']:.1f}"
            cpu_vs = "" if row["cpu_vs_today"] is None else f"{row['cpu_vs_today']:.2f}x"
            lines.append(f"| {name} | {row['photos']} ({row.get('outside', 0)}) | "
                         f"{row['bytes']:,.0f} | {vs} | {cpu} | {cpu_vs} |")
        jpegli = found["jpegli_as_set"]
        lines += ["", f"jpegli as photopipe runs it (q{jpegli['quality']}): "
                  f"{jpegli['bytes']:,} bytes, {jpegli['vs_today']:.3f}x libjpeg-turbo's, at "
                  f"{jpegli['cpu_vs_today']:.2f}x its encode CPU; score "
                  f"{jpegli['score_mean']:.1f} ({jpegli['score_delta_mean']:+.2f} on average, "
                  f"{jpegli['score_delta_min']:+.1f} to {jpegli['score_delta_max']:+.1f} photo "
                  "by photo).", ""]
    lines += ["Bars (issue 22): a JPEG encoder with at least 10 % fewer bytes at an equal score "
              "and under 2x the encode CPU becomes the default; AVIF becomes a format a ladder "
              "can add if its encode fits the CPU targets at a useful speed.", "",
              f"Machine: {data['machine']}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    paths = sorted(args.corpus.glob("*.jpg"))
    with ProcessPoolExecutor(args.processes) as pool:
        photos = list(pool.map(measure_photo, paths))
    data = {"photos": [p.name for p in paths], "per_photo": photos,
            "summary": summarise(photos), "machine": machine(),
            "encoders": {"pyjpegli": getattr(pyjpegli, "__version__", "unknown"),
                         "pillow_avif": getattr(pillow_avif, "__version__", "unknown")}}
    markdown = table(data)
    write("perceptual", markdown, data)
    print(markdown)


if __name__ == "__main__":
    main()
