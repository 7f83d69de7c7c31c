"""The layers the README draws, guarded: faces -> use cases -> ports and render core -> settings,
errors, records. Every import counts, the lazy ones inside functions too."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USE_CASES = ("jobs", "producer", "relay", "reprocess", "sweep", "uploads", "webhooks",
             "previews", "documents")
FACES = ("pipeline.cli", "pipeline.web", "pipeline.observability", "workers")
PORTS = ("pipeline.storage", "pipeline.metadata")
BROKERS_AND_DRIVERS = ("celery", "kombu", "amqp", "redis", "billiard", "boto3", "botocore",
                       "psycopg", "sqlite3", "prometheus_client")
PIXELS = ("PIL", "numpy", "filters")


def modules(folder: str) -> list[Path]:
    """The Python files of a package (or one module, given as ``x.py``)."""
    path = ROOT / folder
    return [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))


def imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, anywhere in it, as an absolute dotted name."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def within(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def breaches(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    """``file: module`` for every import under ``folder`` of a module under ``forbidden``."""
    files = modules(folder)
    assert files, f"no modules under {folder}: the rule would check nothing"
    return [f"{path.relative_to(ROOT)}: {name}" for path in files for name in imports(path)
            if within(name, forbidden)]


def test_the_scanner_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """A rule is only as good as the scanner: an import inside a function counts."""
    assert "pipeline.core.render" in set(imports(ROOT / "pipeline/jobs.py"))
    lazy = set(imports(ROOT / "pipeline/metadata/__init__.py"))
    assert "pipeline.metadata.shards.store" in lazy  # imported inside open_metadata()


def test_workers_know_no_pixels() -> None:
    assert breaches("workers", ("PIL", "numpy")) == []


def test_filters_know_nothing_of_the_pipeline() -> None:
    assert breaches("filters", ("pipeline", "workers")) == []


def test_the_core_knows_no_port_broker_or_face() -> None:
    above = PORTS + FACES + tuple(f"pipeline.{u}" for u in USE_CASES)
    assert breaches("pipeline/core", above + BROKERS_AND_DRIVERS) == []


def test_the_core_takes_settings_as_plain_values() -> None:
    """The core gets its limits and encoder settings handed in; it never reads the environment
    (``Settings.from_env``) itself."""
    names = [name for path in modules("pipeline/core") for name in imports(path)
             if name.startswith("pipeline.settings.")]
    assert names, "the core takes Limits and Encoding from pipeline.settings"
    assert set(names) <= {"pipeline.settings.Limits", "pipeline.settings.Encoding"}


@pytest.mark.parametrize("port", ["pipeline/storage", "pipeline/metadata"])
def test_ports_know_no_use_case_core_or_face(port: str) -> None:
    above = FACES + tuple(f"pipeline.{u}" for u in USE_CASES) + ("pipeline.core",)
    assert breaches(port, above + PIXELS) == []


@pytest.mark.parametrize("use_case", USE_CASES)
def test_use_cases_know_no_face(use_case: str) -> None:
    assert breaches(f"pipeline/{use_case}.py", (*FACES, "celery", "kombu")) == []


@pytest.mark.parametrize("base", ["pipeline/settings.py", "pipeline/errors.py",
                                  "pipeline/records.py"])
def test_the_bottom_layer_imports_nothing_of_photopipe(base: str) -> None:
    assert breaches(base, ("pipeline", "filters", "workers")) == []


def test_the_port_imports_none_of_its_implementations() -> None:
    """The sharded store takes its records from the port; nothing there imports it back."""
    implementations = ("pipeline.metadata.sqlite", "pipeline.metadata.postgres",
                       "pipeline.metadata.sql", "pipeline.metadata.shards")
    assert breaches("pipeline/metadata/port.py", implementations) == []
    store = set(imports(ROOT / "pipeline/metadata/shards/store.py"))
    assert "pipeline.metadata.port" in store and "pipeline.metadata" not in store


def test_the_core_loads_alone() -> None:
    """In a clean interpreter, rendering a photo loads no port, broker or database driver."""
    watched = ("pipeline.storage", "pipeline.metadata", "pipeline.jobs", "celery", "kombu",
               "boto3", "botocore", "psycopg", "workers")
    code = (
        "import io, sys\n"
        "from PIL import Image\n"
        "import pipeline.core, pipeline.core.preview, pipeline.core.spec, pipeline.core.startup\n"
        "buffer = io.BytesIO()\n"
        "Image.new('RGB', (64, 48), (200, 120, 40)).save(buffer, 'JPEG')\n"
        "pipeline.core.render(buffer.getvalue(), filter='clarendon', ladder='classic')\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {watched[4:]!r} "
        f"or any(m == w or m.startswith(w + '.') for w in {watched[:4]!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout
