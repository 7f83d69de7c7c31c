"""Render CSSgram reference images in headless Chromium (called by scripts/cssgram-references).

Each test image is laid out once per look on one page (a grid of <figure> elements, each exactly
the image's size), captured in one screenshot, and cut back into one PNG per look. The CSS is
npm's cssgram@0.1.3 for the 14 looks it defines as CSSgram 0.1.12 does, and the spec
(shared/filters/CSSGRAM_SPEC.md) for the rest, gingham 0.1.12 included.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

FROM_NPM = ["_1977", "aden", "brooklyn", "earlybird", "hudson", "inkwell", "lofi", "mayfair",
            "nashville", "perpetua", "reyes", "toaster", "walden", "xpro2"]
BASE = """
html, body { margin: 0; padding: 0; background: #fff; }
img { display: block; }
figure { margin: 0; position: absolute; overflow: hidden; }
.pp { position: relative; }
.pp img { width: 100%; z-index: 1; }
.pp::before, .pp::after { content: ''; display: block; height: 100%; width: 100%; top: 0;
  left: 0; position: absolute; pointer-events: none; }
.pp::before { z-index: 2; }
.pp::after { z-index: 3; }
"""
# The looks cssgram@0.1.3 lacks (and gingham as 0.1.12 has it), written from the spec's table.
FROM_SPEC = """
.brannan { filter: sepia(.5) contrast(1.4); }
.brannan::after { background: rgba(161, 44, 199, .31); mix-blend-mode: lighten; }
.clarendon { filter: contrast(1.2) saturate(1.35); }
.clarendon::before { background: rgba(127, 187, 227, .2); mix-blend-mode: overlay; }
.gingham { filter: brightness(1.05) hue-rotate(-10deg); }
.gingham::after { background: lavender; mix-blend-mode: soft-light; }
.kelvin::after { background: #b77d21; mix-blend-mode: overlay; }
.kelvin::before { background: #382c34; mix-blend-mode: color-dodge; }
.lark { filter: contrast(.9); }
.lark::after { background: rgba(242, 242, 242, .8); mix-blend-mode: darken; }
.lark::before { background: #22253f; mix-blend-mode: color-dodge; }
.maven { filter: sepia(.25) brightness(.95) contrast(.95) saturate(1.5); }
.maven::after { background: rgba(3, 230, 26, .2); mix-blend-mode: hue; }
.moon { filter: grayscale(1) contrast(1.1) brightness(1.1); }
.moon::before { background: #a0a0a0; mix-blend-mode: soft-light; }
.moon::after { background: #383838; mix-blend-mode: lighten; }
.rise { filter: brightness(1.05) sepia(.2) contrast(.9) saturate(.9); }
.rise::after { background: radial-gradient(circle, rgba(232, 197, 152, .8), transparent 90%);
  mix-blend-mode: overlay; opacity: .6; }
.rise::before { background: radial-gradient(circle, rgba(236, 205, 169, .15) 55%,
  rgba(50, 30, 7, .4)); mix-blend-mode: multiply; }
.slumber { filter: saturate(.66) brightness(1.05); }
.slumber::after { background: rgba(125, 105, 24, .5); mix-blend-mode: soft-light; }
.slumber::before { background: rgba(69, 41, 12, .4); mix-blend-mode: lighten; }
.stinson { filter: contrast(.75) saturate(.85) brightness(1.15); }
.stinson::before { background: rgba(240, 149, 128, .2); mix-blend-mode: soft-light; }
.valencia { filter: contrast(1.08) brightness(1.08) sepia(.08); }
.valencia::after { background: #3a0339; mix-blend-mode: exclusion; opacity: .5; }
.willow { filter: grayscale(.5) contrast(.95) brightness(.9); }
.willow::before { background-color: radial-gradient(40% 180%, #d4a9af 55%, black 150%);
  mix-blend-mode: overlay; }
.willow::after { background-color: #d8cdcb; mix-blend-mode: color; }
"""
LOOKS = sorted([*FROM_NPM, "brannan", "clarendon", "gingham", "kelvin", "lark", "maven",
                "moon", "rise", "slumber", "stinson", "valencia", "willow"])
COLUMNS = 6
CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--force-color-profile=srgb", "--force-device-scale-factor=1", "--hide-scrollbars",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-quic", "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>"]


def page(image: Path, npm_css: str) -> tuple[str, list[tuple[str, int, int]], tuple[int, int]]:
    """The HTML page for one image: ``normal`` (no class) and every look, on a grid."""
    width, height = Image.open(image).size
    uri = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    cells, figures = [], []
    for index, look in enumerate(["normal", *LOOKS]):
        left, top = (index % COLUMNS) * width, (index // COLUMNS) * height
        cells.append((look, left, top))
        css_class = "" if look == "normal" else f"pp {look}"
        style = f"position:absolute;left:{left}px;top:{top}px;width:{width}px;height:{height}px"
        figures.append(f'<figure class="{css_class}" style="{style}"><img src="{uri}"></figure>')
    rows = (len(cells) + COLUMNS - 1) // COLUMNS
    gingham_free = npm_css.replace(".gingham", ".gingham-013")  # 0.1.3's gingham differs
    html = (f"<!doctype html><html><head><style>{BASE}{gingham_free}{FROM_SPEC}</style></head>"
            f"<body>{''.join(figures)}</body></html>")
    return html, cells, (COLUMNS * width, rows * height)


def capture(html: str, size: tuple[int, int], work: Path) -> Image.Image:
    (work / "page.html").write_text(html)
    shot = work / "shot.png"
    subprocess.run([*CHROMIUM, f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}",
                    (work / "page.html").as_uri()], check=True, capture_output=True, timeout=120)
    return Image.open(shot).convert("RGB")


def main(npm_css_path: str, folder: str, work_dir: str) -> int:
    npm_css, root, work = Path(npm_css_path).read_text(), Path(folder), Path(work_dir)
    for image in sorted(root.glob("*.png")):
        html, cells, size = page(image, npm_css)
        shot = capture(html, size, work)
        source = Image.open(image).convert("RGB")
        width, height = source.size
        crops = {look: shot.crop((x, y, x + width, y + height)) for look, x, y in cells}
        if not np.array_equal(np.asarray(crops["normal"]), np.asarray(source)):
            print(f"unfiltered capture of {image.name} differs from the image", file=sys.stderr)
            return 1
        for look in LOOKS:
            crops[look].save(root / "references" / f"{look}__{image.stem}.png")
        print(f"{image.name}: {len(LOOKS)} references")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
