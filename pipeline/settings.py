"""One typed settings object, built from the environment in exactly one place.

Every variable photopipe reads is named and described in :meth:`Settings.from_env`; tests build
``Settings(...)`` directly instead of patching the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = Path("var")


@dataclass(frozen=True)
class Limits:
    """What an upload may declare before photopipe refuses to decode its pixels.

    The defaults admit every phone photo of today (108 MP sensors write about 30 MB JPEGs) and
    refuse decompression bombs long before they allocate memory.
    """

    max_pixels: int = 120_000_000
    max_bytes: int = 50 * 1024 * 1024
    max_frames: int = 1000

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_bytes", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer")


@dataclass(frozen=True)
class Encoding:
    """Encoder settings for the renditions."""

    jpeg_quality: int = 85
    webp_quality: int = 80
    webp_method: int = 4

    def __post_init__(self) -> None:
        if not (1 <= self.jpeg_quality <= 100 and 1 <= self.webp_quality <= 100):
            raise ValueError("qualities must be between 1 and 100")
        if not 0 <= self.webp_method <= 6:
            raise ValueError("webp_method must be between 0 and 6")


@dataclass(frozen=True)
class Settings:
    """Everything a photopipe process needs to know about its environment."""

    storage_url: str = f"file://{(DEFAULT_DATA_DIR / 'objects').resolve()}"
    database_url: str = f"sqlite:///{(DEFAULT_DATA_DIR / 'photopipe.db').resolve()}"
    broker_url: str | None = None
    s3_endpoint_url: str | None = None
    max_attempts: int = 10
    task_time_limit: int = 300
    limits: Limits = field(default_factory=Limits)
    encoding: Encoding = field(default_factory=Encoding)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default: ``os.environ``).

        Raises:
            ValueError: a variable is set to something that cannot be used.
        """
        env = os.environ if env is None else env
        data_dir = Path(env.get("PHOTOPIPE_DATA_DIR", str(DEFAULT_DATA_DIR))).resolve()
        defaults = Limits()
        return cls(
            # Where renditions and originals go: file:///dir or s3://bucket/prefix.
            storage_url=env.get("PHOTOPIPE_STORAGE_URL") or f"file://{data_dir / 'objects'}",
            # Where photo and rendition rows go: sqlite:///path or postgresql://...
            database_url=env.get("PHOTOPIPE_DATABASE_URL")
            or f"sqlite:///{data_dir / 'photopipe.db'}",
            # Celery broker (amqp:// or redis://); unset means jobs run in-process.
            broker_url=env.get("PHOTOPIPE_BROKER_URL") or None,
            # S3-compatible endpoint (MinIO, Ceph); unset means AWS itself.
            s3_endpoint_url=env.get("PHOTOPIPE_S3_ENDPOINT_URL") or None,
            # A photo tried this many times is failed for good (a backstop to the broker's
            # delivery limit and the retry policy).
            max_attempts=_int(env, "PHOTOPIPE_MAX_ATTEMPTS", 10),
            # Seconds a worker may spend on one photo before it is killed; must stay below the
            # broker's consumer timeout (RabbitMQ's default is 30 minutes).
            task_time_limit=_int(env, "PHOTOPIPE_TASK_TIME_LIMIT", 300),
            limits=Limits(
                # Largest width x height accepted, checked from the header before decoding.
                max_pixels=_int(env, "PHOTOPIPE_MAX_PIXELS", defaults.max_pixels),
                # Largest upload accepted, in bytes.
                max_bytes=_int(env, "PHOTOPIPE_MAX_BYTES", defaults.max_bytes),
                # Most frames an animation may declare (only the first is rendered).
                max_frames=_int(env, "PHOTOPIPE_MAX_FRAMES", defaults.max_frames),
            ),
        )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw.replace("_", ""))
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from exc
