"""Time pilgram 2.0.0's looks (run in the peers' venv, with stock Pillow).

    python pilgram_looks.py IMAGE REPEATS LOOK...   ->   JSON {look: [seconds, ...]} on stdout
"""

from __future__ import annotations

import json
import sys
import time

import PIL
import pilgram
from PIL import Image


def main(path: str, repeats: str, *looks: str) -> None:
    image = Image.open(path).convert("RGB")
    image.load()
    times: dict[str, list[float]] = {}
    for look in looks:
        function = getattr(pilgram, look)
        function(image)
        runs = []
        for _ in range(int(repeats)):
            started = time.perf_counter()
            function(image)
            runs.append(time.perf_counter() - started)
        times[look] = runs
    json.dump({"times": times, "pillow": PIL.__version__,
               "pilgram": getattr(pilgram, "__version__", "2.0.0")}, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
