"""Settings come from the environment in one place, and every documented variable is read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.settings import Encoding, Limits, Settings

ROOT = Path(__file__).resolve().parents[1]
# Each documented variable, a value unlike its default, and where that value must land.
VARIABLES: dict[str, tuple[str, str, object]] = {
    "PHOTOPIPE_STORAGE_URL": ("s3://bucket/prefix", "storage_url", "s3://bucket/prefix"),
    "PHOTOPIPE_DATABASE_URL": ("postgresql://h/db", "database_url", "postgresql://h/db"),
    "PHOTOPIPE_BROKER_URL": ("amqp://h//", "broker_url", "amqp://h//"),
    "PHOTOPIPE_S3_ENDPOINT_URL": ("http://h:9000", "s3_endpoint_url", "http://h:9000"),
    "PHOTOPIPE_MAX_ATTEMPTS": ("7", "max_attempts", 7),
    "PHOTOPIPE_TASK_TIME_LIMIT": ("77", "task_time_limit", 77),
    "PHOTOPIPE_OUTAGE_PATIENCE": ("12.5", "outage_patience", 12.5),
    "PHOTOPIPE_RETRY_BACKOFF": ("0.25", "retry_backoff", 0.25),
    "PHOTOPIPE_RETRY_BACKOFF_MAX": ("9", "retry_backoff_max", 9.0),
    "PHOTOPIPE_SUBMIT_PATIENCE": ("3", "submit_patience", 3.0),
    "PHOTOPIPE_STUCK_AFTER": ("120", "stuck_after", 120.0),
    "PHOTOPIPE_SECRET_KEY": ("s" * 32, "secret_key", "s" * 32),
    "PHOTOPIPE_PUBLIC_BASE_URL": ("https://cdn.example/p/", "public_base_url",
                                  "https://cdn.example/p"),
    "PHOTOPIPE_HTTP_BODY_TIMEOUT": ("7.5", "http_body_timeout", 7.5),
    "PHOTOPIPE_UPLOADS_PER_MINUTE": ("30", "uploads_per_minute", 30),
    "PHOTOPIPE_UPLOAD_EXPIRES": ("3600", "upload_expires", 3600.0),
    "PHOTOPIPE_WEBHOOK_URL": ("https://web.example/hooks", "webhook_url",
                              "https://web.example/hooks"),
    "PHOTOPIPE_WEBHOOK_SECRET": ("whsec_c2VjcmV0", "webhook_secret", "whsec_c2VjcmV0"),
    "PHOTOPIPE_WEBHOOK_PATIENCE": ("600", "webhook_patience", 600.0),
    "PHOTOPIPE_WEBHOOK_TIMEOUT": ("2.5", "webhook_timeout", 2.5),
    "PHOTOPIPE_CORS_ORIGINS": ("https://a.example, https://b.example/", "cors_origins",
                               ("https://a.example", "https://b.example")),
    "PHOTOPIPE_DB_STATEMENT_TIMEOUT_MS": ("1234", "statement_timeout_ms", 1234),
    "PHOTOPIPE_DB_LOCK_TIMEOUT_MS": ("567", "lock_timeout_ms", 567),
    "PHOTOPIPE_READ_FROM_STANDBYS": ("1", "read_from_standbys", True),
    "PHOTOPIPE_STANDBY_MAX_LAG": ("2.5", "standby_max_lag", 2.5),
    "PHOTOPIPE_LOG_FORMAT": ("json", "log_format", "json"),
    "PHOTOPIPE_METRICS_DIR": ("/tmp/m", "metrics_dir", Path("/tmp/m")),
    "PHOTOPIPE_MAX_PIXELS": ("1_000", "limits.max_pixels", 1000),
    "PHOTOPIPE_MAX_BYTES": ("2000", "limits.max_bytes", 2000),
    "PHOTOPIPE_MAX_FRAMES": ("3", "limits.max_frames", 3),
    "PHOTOPIPE_JPEG_ENCODER": ("libjpeg-turbo", "encoding.jpeg_encoder", "libjpeg-turbo"),
    "PHOTOPIPE_JPEG_QUALITY": ("90", "encoding.jpeg_quality", 90),
    "PHOTOPIPE_JPEG_PROGRESSIVE": ("0", "encoding.jpeg_progressive", False),
    "PHOTOPIPE_JPEG_OPTIMIZE": ("no", "encoding.jpeg_optimize", False),
    "PHOTOPIPE_JPEG_SUBSAMPLING": ("4:4:4", "encoding.jpeg_subsampling", "4:4:4"),
    "PHOTOPIPE_WEBP_QUALITY": ("70", "encoding.webp_quality", 70),
    "PHOTOPIPE_WEBP_METHOD": ("6", "encoding.webp_method", 6),
}
# Variables that only mean something beside another: set with it, compared with it alone.
BESIDE = {name: {"PHOTOPIPE_JPEG_ENCODER": "libjpeg-turbo"} for name in (
    "PHOTOPIPE_JPEG_PROGRESSIVE", "PHOTOPIPE_JPEG_OPTIMIZE", "PHOTOPIPE_JPEG_SUBSAMPLING")}


def _field(settings: Settings, path: str) -> object:
    value: object = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def test_defaults_are_the_embedded_default(tmp_path: Path) -> None:
    settings = Settings.from_env({"PHOTOPIPE_DATA_DIR": str(tmp_path)})
    assert settings.storage_url == f"file://{tmp_path / 'objects'}"
    assert settings.database_url == f"sqlite:///{tmp_path / 'photopipe.db'}"
    assert settings.broker_url is None and settings.limits == Limits()
    assert settings.encoding == Encoding() and settings.max_attempts == 5


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_each_variable_reaches_its_setting_and_only_it(name: str) -> None:
    raw, path, expected = VARIABLES[name]
    beside = BESIDE.get(name, {})
    default, settings = Settings.from_env(beside), Settings.from_env({**beside, name: raw})
    assert _field(settings, path) == expected != _field(default, path)
    others = [p for _, p, _ in VARIABLES.values() if p != path]
    assert all(_field(settings, p) == _field(default, p) for p in others)


def test_the_variables_read_are_the_variables_documented() -> None:
    read = set(re.findall(r'"(PHOTOPIPE_[A-Z0-9_]+)"', (ROOT / "pipeline" / "settings.py")
                          .read_text()))
    documented = set(re.findall(r"^\| `(PHOTOPIPE_[A-Z0-9_]+)` \|",
                                (ROOT / "README.md").read_text(), re.MULTILINE))
    assert read == documented == set(VARIABLES) | {"PHOTOPIPE_DATA_DIR"}


def test_bad_values_say_which_variable() -> None:
    with pytest.raises(ValueError, match="PHOTOPIPE_MAX_BYTES"):
        Settings.from_env({"PHOTOPIPE_MAX_BYTES": "lots"})
    with pytest.raises(ValueError, match="PHOTOPIPE_OUTAGE_PATIENCE"):
        Settings.from_env({"PHOTOPIPE_OUTAGE_PATIENCE": "forever"})
    with pytest.raises(ValueError, match="max_frames"):
        Settings.from_env({"PHOTOPIPE_MAX_FRAMES": "0"})
    with pytest.raises(ValueError, match="PHOTOPIPE_JPEG_PROGRESSIVE"):
        Settings.from_env({"PHOTOPIPE_JPEG_PROGRESSIVE": "maybe"})
    with pytest.raises(ValueError, match="jpeg_subsampling"):
        Settings.from_env({"PHOTOPIPE_JPEG_SUBSAMPLING": "4:1:1",
                           "PHOTOPIPE_JPEG_ENCODER": "libjpeg-turbo"})
    for name, raw in (("PHOTOPIPE_JPEG_SUBSAMPLING", "4:4:4"), ("PHOTOPIPE_JPEG_OPTIMIZE", "0"),
                      ("PHOTOPIPE_JPEG_PROGRESSIVE", "1")):  # with jpegli, the default
        with pytest.raises(ValueError, match="PHOTOPIPE_JPEG_ENCODER=libjpeg-turbo"):
            Settings.from_env({name: raw})
    with pytest.raises(ValueError, match="jpeg_encoder"):
        Settings.from_env({"PHOTOPIPE_JPEG_ENCODER": "mozjpeg"})
    with pytest.raises(ValueError, match="task_time_limit"):
        Settings.from_env({"PHOTOPIPE_TASK_TIME_LIMIT": "1"})
    with pytest.raises(ValueError, match="PHOTOPIPE_STUCK_AFTER"):
        Settings.from_env({"PHOTOPIPE_STUCK_AFTER": "0"})
    with pytest.raises(ValueError, match="PHOTOPIPE_SECRET_KEY"):
        Settings.from_env({"PHOTOPIPE_SECRET_KEY": "short"})
    hooked = Settings.from_env({"PHOTOPIPE_WEBHOOK_SECRET": "whsec_c2VjcmV0"})
    assert "whsec" not in repr(hooked)
    with pytest.raises(ValueError, match="PHOTOPIPE_WEBHOOK_TIMEOUT"):
        Settings.from_env({"PHOTOPIPE_WEBHOOK_TIMEOUT": "0"})
    with pytest.raises(ValueError, match="PHOTOPIPE_UPLOAD_EXPIRES"):
        Settings.from_env({"PHOTOPIPE_UPLOAD_EXPIRES": "0"})
    with pytest.raises(ValueError, match="PHOTOPIPE_HTTP_BODY_TIMEOUT"):
        Settings.from_env({"PHOTOPIPE_HTTP_BODY_TIMEOUT": "0"})
    for lag in ("-1", "inf", "nan"):  # written into the freshness check's SQL as a number
        with pytest.raises(ValueError, match="PHOTOPIPE_STANDBY_MAX_LAG"):
            Settings.from_env({"PHOTOPIPE_STANDBY_MAX_LAG": lag})
    assert Settings.from_env({"PHOTOPIPE_STANDBY_MAX_LAG": "0"}).standby_max_lag == 0


def test_the_secret_key_never_shows_in_a_repr() -> None:
    assert "s3cr3t" not in repr(Settings(secret_key="s3cr3t-s3cr3t-s3cr3t"))
