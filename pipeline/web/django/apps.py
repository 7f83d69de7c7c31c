"""The Django app."""

from __future__ import annotations

from django.apps import AppConfig


class PhotopipeConfig(AppConfig):  # type: ignore[misc]  # Django has no type hints
    name = "pipeline.web.django"
    label = "photopipe"
    verbose_name = "photopipe"
