"""The public names users build on: changing them is a breaking change."""

from __future__ import annotations

import inspect

import filters
import pipeline


def test_pipeline_exports() -> None:
    assert set(pipeline.__all__) == {"ImageRejected", "Output", "PermanentError",
                                     "PhotopipeError", "Rendered", "Settings", "TransientError",
                                     "render"}
    parameters = inspect.signature(pipeline.render).parameters
    assert list(parameters)[:5] == ["data", "filter", "strength", "ladder", "limits"]
    assert parameters["filter"].default is None and parameters["strength"].default == 1.0
    assert parameters["ladder"].default == "default"
    assert parameters["filter"].kind is inspect.Parameter.KEYWORD_ONLY


def test_filters_exports() -> None:
    assert set(filters.__all__) == {"Look", "UnknownFilter", "apply", "apply_image", "get",
                                    "names", "recipe"}
    assert list(inspect.signature(filters.apply).parameters) == ["image", "name", "strength"]
    assert list(inspect.signature(filters.apply_image).parameters) == ["image", "name",
                                                                       "strength"]


def test_the_stores_load_without_the_decoder() -> None:
    """The metadata and storage layers need neither Pillow nor numpy (nor the looks)."""
    import subprocess
    import sys

    code = ("import sys, pipeline.metadata.postgres, pipeline.metadata.sqlite, "
            "pipeline.storage.s3, pipeline.storage.local, pipeline.relay; "
            "print(sorted(m for m in ('PIL', 'numpy', 'filters', 'pipeline.core.decode') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
    import pipeline

    # and the public name still works
    assert pipeline.render.__module__ == "pipeline.core.rendering"
