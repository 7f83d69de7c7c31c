"""What the placeholder costs a render (`python -m benchmarks.placeholder`): `render()` of the
benchmark's 12 MP phone photo under clarendon, on each ladder, its stages timed by the render
itself; the placeholder's share of the whole, median of 15 renders after a warm-up."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.common import machine, write
from benchmarks.workload import phone_photo
from pipeline.core import render
from pipeline.core.ladders import LADDERS

RUNS = 15


def measure() -> dict[str, Any]:
    data = phone_photo()
    found: dict[str, Any] = {}
    for ladder in sorted(LADDERS):
        render(data, filter="clarendon", ladder=ladder)
        runs = [render(data, filter="clarendon", ladder=ladder).timings for _ in range(RUNS)]
        totals = [sum(t.values()) for t in runs]
        shares = [t["placeholder"] / sum(t.values()) for t in runs]
        found[ladder] = {"render_ms": 1000 * statistics.median(totals),
                         "placeholder_ms": 1000 * statistics.median(
                             t["placeholder"] for t in runs),
                         "share": statistics.median(shares)}
    return {"ladders": found, "photo_bytes": len(data), "machine": machine()}


def table(data: dict[str, Any]) -> str:
    lines = ["# The placeholder's cost", "",
             f"`render()` of the 12 MP phone JPEG ({data['photo_bytes']:,} bytes) under "
             f"clarendon, median of {RUNS} renders (`python -m benchmarks.placeholder`); the "
             "placeholder is a ThumbHash, an average colour and an aspect, from the largest "
             "rendition's pixels.", "",
             "| ladder | render, ms | placeholder, ms | share |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {name} | {row['render_ms']:.1f} | {row['placeholder_ms']:.2f} | "
              f"{row['share']:.1%} |" for name, row in data["ladders"].items()]
    lines += ["", f"Machine: {data['machine']}", ""]
    return "\n".join(lines)


def main() -> None:
    data = measure()
    write("placeholder", table(data), data)
    print(table(data))


if __name__ == "__main__":
    main()
