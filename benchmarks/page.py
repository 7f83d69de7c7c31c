"""The page's time from choosing a file to the photo shown (`python -m benchmarks.page`):
Debian's chromium (Playwright) on `photopipe serve` on the embedded default (SQLite, a local
folder, the background pool rendering), a 12 MP phone JPEG picked in the page; timed in the
page itself (`performance.now()`): the last chunk's answer, the placeholder in the box (when the
page saw one before the picture), and the `<img>` decoded. Each run is a new photo."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from benchmarks.common import machine, write
from benchmarks.workload import phone_photo
from tests.web.harness import embedded, serve

RUNS = 7
CHROMIUM = "/usr/bin/chromium"
TIMING = """
() => { window.timing = new Promise((done) => {
  const start = performance.now(), seen = {};
  window.addEventListener("photopipe-progress", (e) => {
    if (e.detail.offset === e.detail.size) seen.uploaded = performance.now() - start;
  });
  const watch = setInterval(async () => {
    const states = window.photopipe.states;
    if (states.includes("placeholder") && seen.placeholder === undefined)
      seen.placeholder = performance.now() - start;
    const img = document.querySelector("#photo img");
    if (img && states[states.length - 1] === "picture") {
      clearInterval(watch);
      await img.decode();
      seen.shown = performance.now() - start;
      done(seen);
    }
  }, 10);
}); }
"""


def measure() -> dict[str, Any]:
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as folder, \
            serve(embedded(Path(folder) / "data"), Path(folder) / "serve.log") as server, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for run in range(RUNS + 1):  # the first warms serve's pool and the browser up
            path = Path(folder) / f"phone-{run}.jpg"
            path.write_bytes(phone_photo(3000 + run))
            page = browser.new_page(viewport={"width": 800, "height": 900})
            page.goto(f"http://127.0.0.1:{server.port}/")
            page.wait_for_function("window.photopipe.ready === true")
            page.evaluate(TIMING)  # the clock starts: from here to the photo shown
            page.set_input_files("#file", str(path))
            found: dict[str, float] = page.evaluate("() => window.timing")
            if run:
                runs.append(found)
            page.close()
        browser.close()
    return {"runs": runs, "bytes": len(phone_photo(3000)), "machine": machine()}


def table(data: dict[str, Any]) -> str:
    runs = data["runs"]

    def median(key: str) -> str:
        values = [r[key] for r in runs if key in r]
        return f"{statistics.median(values) / 1000:.2f} s ({len(values)} of {len(runs)})" \
            if values else "not seen"

    lines = ["# The page: from choosing a file to the photo shown", "",
             f"A 12 MP phone JPEG ({data['bytes']:,} bytes) picked in the page served by "
             "`photopipe serve` on the embedded default, in Debian's chromium (Playwright), "
             f"timed in the page; median of {len(runs)} runs, each a new photo, after one to "
             "warm up (`python -m benchmarks.page`).", "",
             "| from choosing the file to | median |", "| --- | ---: |",
             f"| the last chunk's answer (uploaded) | {median('uploaded')} |",
             f"| the placeholder in the box | {median('placeholder')} |",
             f"| the photo shown (its `<img>` decoded) | {median('shown')} |",
             "", f"Machine: {data['machine']}", ""]
    return "\n".join(lines)


def main() -> None:
    data = measure()
    write("page", table(data), data)
    print(table(data))


if __name__ == "__main__":
    main()
