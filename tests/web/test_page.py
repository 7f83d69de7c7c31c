"""The page `photopipe serve` answers at `/`, in a real browser (Debian's chromium, driven by
Playwright; never a browser download): a 12 MP photo uploaded in chunks with its progress, the
placeholder's colour behind the picture, the rendition the browser chose loaded at its natural
width, no request for an image that was not there, a look picked from the strip; and, on a
throttled network that drops a chunk, the upload resumed where it stopped."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Request, Response, Route, sync_playwright

from benchmarks.workload import phone_photo
from tests.web.harness import Server, embedded, serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHUNK = 512 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("page")
    with serve(embedded(folder / "data"), folder / "serve.log") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "phone.jpg"
    path.write_bytes(phone_photo(2026))  # 12 MP, as a phone sends it
    return path


class Recorder:
    """Every request and response of a page."""

    def __init__(self, page: Page) -> None:
        self.requests: list[Request] = []
        self.responses: list[Response] = []
        page.on("request", self.request)
        page.on("response", self.response)

    def request(self, request: Request) -> None:
        self.requests.append(request)

    def response(self, response: Response) -> None:
        self.responses.append(response)

    def images(self) -> list[Response]:
        return [r for r in self.responses if r.request.resource_type == "image"
                and not r.url.startswith("data:") and not r.url.startswith("blob:")]


def open_page(browser: Browser, server: Server) -> tuple[Page, Recorder]:
    page = browser.new_page(viewport={"width": 800, "height": 900})
    recorder = Recorder(page)
    page.goto(f"http://127.0.0.1:{server.port}/")
    page.wait_for_function("window.photopipe.ready === true", timeout=30_000)
    return page, recorder


def test_a_photo_goes_up_with_progress_and_comes_back_as_the_right_rendition(
        browser: Browser, server: Server, photo_file: Path, tmp_path: Path) -> None:
    page, recorder = open_page(browser, server)
    held: list[Route] = []  # the renditions' bytes, held back until the box is looked at
    files = re.compile(r".*/v1/files/.*")

    def hold(route: Route) -> None:
        held.append(route)

    page.route(files, hold)
    page.set_input_files("#file", str(photo_file))
    page.wait_for_function("document.querySelector('#photo img') !== null", timeout=120_000)
    page.wait_for_timeout(300)
    box = page.locator("#photo img").screenshot(path=str(tmp_path / "placeholder.png"))
    for route in held:
        route.continue_()
    page.unroute(files)  # what it holds still (none: the page waits for the picture) goes on
    page.wait_for_function("window.photopipe.done === true || window.photopipe.errors.length",
                           timeout=120_000)
    state: dict[str, Any] = page.evaluate("window.photopipe")
    assert state["errors"] == []
    assert held  # the image was asked for, and waited
    size = photo_file.stat().st_size
    assert state["progress"] == [min(size, CHUNK * n) for n in range(1, len(state["progress"]) + 1)]
    assert len(state["progress"]) == -(-size // CHUNK) >= 4  # every chunk, in order
    assert state["states"][-1] == "picture" and "box" not in state["states"][1:]
    document = json.loads(page.evaluate(
        "async (id) => await (await api(`/v1/photos/${id}`)).text()", state["photo"]))
    colour = document["placeholder"]["color"]
    image = page.locator("#photo img")
    image.evaluate("img => img.decode()")
    loaded = image.evaluate("img => ({src: img.currentSrc, natural: img.naturalWidth, "
                            "background: getComputedStyle(img).backgroundColor})")
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    assert loaded["background"] == f"rgb({red}, {green}, {blue})"  # the box's, until it loads
    with Image.open(io.BytesIO(box)) as shot:  # what the box showed before the image came
        painted = np.asarray(shot.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
        assert shot.size[0] > 100 and shot.size[1] > 100
    assert np.abs(painted - (red, green, blue)).max() < 24, (painted, colour)
    chosen = next(r for r in document["renditions"] if r["url"].split("?")[0] in
                  loaded["src"])
    intrinsic = page.evaluate("async (src) => { const i = new Image(); i.src = src; "
                              "await i.decode(); return i.naturalWidth; }", loaded["src"])
    assert intrinsic == chosen["width"]  # the file is the rendition the browser chose
    # naturalWidth is in CSS pixels: the chosen width over its density at sizes' 640px
    assert loaded["natural"] == round(chosen["width"] / (chosen["width"] / 640))
    assert chosen["format"] == "webp"  # chromium takes the WebP source
    page.screenshot(path=str(tmp_path / "uploaded.png"), full_page=True)
    bad = [(r.url, r.status) for r in recorder.images() if r.status != 200]
    assert bad == []  # no 404 and no 202 for an image: nothing asked before it was there

    page.locator("#looks button[data-look='inkwell'] img").wait_for()
    page.wait_for_function("[...document.querySelectorAll('#looks img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)", timeout=60_000)
    assert page.locator("#looks button").count() == 27  # normal and the 26 looks
    page.click("#looks button[data-look='inkwell']")
    page.wait_for_function("document.querySelector('#status').textContent"
                           ".includes('Here it is with inkwell')", timeout=60_000)
    again = json.loads(page.evaluate(
        "async (id) => await (await api(`/v1/photos/${id}`)).text()", state["photo"]))
    assert (again["filter"], again["generation"], again["status"]) == ("inkwell", 2, "ready")
    assert page.locator("#grid img").count() >= 1
    page.screenshot(path=str(tmp_path / "inkwell.png"), full_page=True)
    assert [(r.url, r.status) for r in recorder.images() if r.status != 200] == []


def test_on_a_throttled_network_a_dropped_chunk_is_resumed_where_it_stopped(
        browser: Browser, server: Server, photo_file: Path) -> None:
    page, recorder = open_page(browser, server)
    session = page.context.new_cdp_session(page)
    session.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 40, "downloadThroughput": 4_000_000,
        "uploadThroughput": 2_000_000})
    dropped: list[str] = []

    def drop_the_third_chunk(route: Route) -> None:
        request = route.request
        if request.method == "PATCH" and request.headers.get("upload-offset") == \
                str(2 * CHUNK) and not dropped:
            dropped.append(request.headers["upload-offset"])
            route.abort("connectionreset")
            return
        route.continue_()

    page.route(re.compile(r".*/v1/uploads/.*"), drop_the_third_chunk)
    page.set_input_files("#file", str(photo_file))
    page.wait_for_function("window.photopipe.done === true", timeout=180_000)
    offsets = [int(r.headers["upload-offset"]) for r in recorder.requests
               if r.method == "PATCH" and "/v1/uploads/" in r.url]
    assert dropped == [str(2 * CHUNK)]
    assert offsets[:4] == [0, CHUNK, 2 * CHUNK, 2 * CHUNK]  # the dropped one again, not 0
    assert offsets == sorted(offsets) and offsets.count(0) == 1
    heads = [r for r in recorder.requests if r.method == "HEAD"]
    assert heads  # it asked the server where the upload got to
    assert page.evaluate("window.photopipe.errors.length") == 1  # the dropped chunk's
