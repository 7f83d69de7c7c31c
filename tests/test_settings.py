"""Settings come from the environment in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import Limits, Settings


def test_defaults_are_the_embedded_default(tmp_path: Path) -> None:
    settings = Settings.from_env({"PHOTOPIPE_DATA_DIR": str(tmp_path)})
    assert settings.storage_url == f"file://{tmp_path / 'objects'}"
    assert settings.database_url == f"sqlite:///{tmp_path / 'photopipe.db'}"
    assert settings.broker_url is None and settings.limits == Limits()


def test_every_variable_is_read() -> None:
    settings = Settings.from_env({
        "PHOTOPIPE_STORAGE_URL": "s3://bucket/prefix",
        "PHOTOPIPE_DATABASE_URL": "postgresql://127.0.0.1/test",
        "PHOTOPIPE_BROKER_URL": "amqp://guest:guest@127.0.0.1//",
        "PHOTOPIPE_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "PHOTOPIPE_MAX_PIXELS": "1_000", "PHOTOPIPE_MAX_BYTES": "2000",
        "PHOTOPIPE_MAX_FRAMES": "3"})
    assert settings.storage_url == "s3://bucket/prefix"
    assert settings.database_url == "postgresql://127.0.0.1/test"
    assert settings.broker_url == "amqp://guest:guest@127.0.0.1//"
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"
    assert settings.limits == Limits(max_pixels=1000, max_bytes=2000, max_frames=3)


def test_bad_values_say_which_variable() -> None:
    with pytest.raises(ValueError, match="PHOTOPIPE_MAX_BYTES"):
        Settings.from_env({"PHOTOPIPE_MAX_BYTES": "lots"})
    with pytest.raises(ValueError, match="max_frames"):
        Settings.from_env({"PHOTOPIPE_MAX_FRAMES": "0"})
