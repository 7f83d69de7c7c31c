"""One typed settings object, built from the environment in exactly one place.

Every variable photopipe reads is named and described in :meth:`Settings.from_env`; tests build
``Settings(...)`` directly instead of patching the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

DEFAULT_DATA_DIR = Path("var")
LOG_FORMATS = ("plain", "json")
SUBSAMPLINGS = ("4:2:0", "4:2:2", "4:4:4")
# Each JPEG encoder's default quality: jpegli's is the lowest that scores at least as well as
# libjpeg-turbo's on average (benchmarks/perceptual.py).
JPEG_QUALITY = {"jpegli": 88, "libjpeg-turbo": 85}
N = TypeVar("N", int, float)
V = TypeVar("V")


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
    """Encoder settings for the renditions.

    JPEG comes from jpegli by default: for the score libjpeg-turbo reaches at q85 (4:2:0,
    progressive), jpegli makes 2-4 % fewer bytes at 0.4x the encode CPU; its q88 scores half a
    point higher on average (SSIMULACRA2, the real photos; benchmarks/results/perceptual.md).
    As photopipe runs it (``pyjpegli``) it writes baseline 4:2:0 JPEG and takes only a quality;
    the progressive, optimise and subsampling settings are libjpeg-turbo's, and asking for
    them with jpegli is an error.
    """

    jpeg_encoder: str = "jpegli"
    jpeg_quality: int | None = None  # None: the encoder's own (JPEG_QUALITY)
    # libjpeg-turbo only (None: its default here). Progressive JPEG (its Huffman tables are
    # always optimised): the same pixels in fewer bytes for a few ms, and a photo is encoded
    # once and served many times (benchmarks/results/encoding.md).
    jpeg_progressive: bool | None = None
    jpeg_optimize: bool | None = None  # optimised Huffman tables for baseline files
    jpeg_subsampling: str | None = None
    webp_quality: int = 80
    webp_method: int = 4

    def __post_init__(self) -> None:
        if self.jpeg_encoder not in JPEG_QUALITY:
            raise ValueError(f"jpeg_encoder must be one of {', '.join(JPEG_QUALITY)}, "
                             f"not {self.jpeg_encoder!r}")
        if not (1 <= self.quality <= 100 and 1 <= self.webp_quality <= 100):
            raise ValueError("qualities must be between 1 and 100")
        if not 0 <= self.webp_method <= 6:
            raise ValueError("webp_method must be between 0 and 6")
        if self.jpeg_subsampling is not None and self.jpeg_subsampling not in SUBSAMPLINGS:
            raise ValueError(f"jpeg_subsampling must be one of {', '.join(SUBSAMPLINGS)}, "
                             f"not {self.jpeg_subsampling!r}")
        turbo = {"jpeg_progressive": self.jpeg_progressive, "jpeg_optimize": self.jpeg_optimize,
                 "jpeg_subsampling": self.jpeg_subsampling}
        asked = [name for name, value in turbo.items() if value is not None]
        if self.jpeg_encoder != "libjpeg-turbo" and asked:
            raise ValueError(f"{', '.join(asked)}: libjpeg-turbo's settings; jpegli writes "
                             "baseline 4:2:0 JPEG (set PHOTOPIPE_JPEG_ENCODER=libjpeg-turbo)")

    @property
    def quality(self) -> int:
        """The JPEG quality used: the setting, or the encoder's own default."""
        return JPEG_QUALITY[self.jpeg_encoder] if self.jpeg_quality is None else \
            self.jpeg_quality

    @property
    def progressive(self) -> bool:
        return True if self.jpeg_progressive is None else self.jpeg_progressive

    @property
    def optimize(self) -> bool:
        return True if self.jpeg_optimize is None else self.jpeg_optimize

    @property
    def subsampling(self) -> str:
        return self.jpeg_subsampling or "4:2:0"


@dataclass(frozen=True)
class Settings:
    """Everything a photopipe process needs to know about its environment."""

    storage_url: str = f"file://{(DEFAULT_DATA_DIR / 'objects').resolve()}"
    database_url: str = f"sqlite:///{(DEFAULT_DATA_DIR / 'photopipe.db').resolve()}"
    broker_url: str | None = None
    s3_endpoint_url: str | None = None
    max_attempts: int = 5
    task_time_limit: int = 300
    outage_patience: float = 3600.0
    retry_backoff: float = 1.0
    retry_backoff_max: float = 60.0
    submit_patience: float = 15.0
    stuck_after: float = 900.0
    statement_timeout_ms: int = 30_000
    lock_timeout_ms: int = 10_000
    read_from_standbys: bool = False
    standby_max_lag: float = 5.0
    log_format: str = "plain"
    metrics_dir: Path | None = None
    secret_key: str | None = field(default=None, repr=False)
    public_base_url: str | None = None
    http_body_timeout: float = 30.0
    cors_origins: tuple[str, ...] = ()
    uploads_per_minute: int = 0
    upload_expires: float = 86400.0
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_patience: float = 86400.0
    webhook_timeout: float = 10.0
    limits: Limits = field(default_factory=Limits)
    encoding: Encoding = field(default_factory=Encoding)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.task_time_limit < 2:
            raise ValueError("task_time_limit must be at least 2 seconds")
        if self.outage_patience < 0:
            raise ValueError("outage_patience must not be negative")
        if not 0 < self.retry_backoff <= self.retry_backoff_max:
            raise ValueError("retry_backoff must be positive and at most retry_backoff_max")
        if self.stuck_after <= 0:
            raise ValueError("PHOTOPIPE_STUCK_AFTER must be a positive number of seconds")
        if self.statement_timeout_ms < 1 or self.lock_timeout_ms < 1 or \
                not 0 <= self.standby_max_lag < float("inf"):
            raise ValueError("database timeouts must be positive, and "
                             "PHOTOPIPE_STANDBY_MAX_LAG a number of seconds, 0 or more")
        if self.uploads_per_minute < 0:
            raise ValueError("PHOTOPIPE_UPLOADS_PER_MINUTE must not be negative")
        if self.webhook_patience < 0 or self.webhook_timeout <= 0:
            raise ValueError("PHOTOPIPE_WEBHOOK_PATIENCE must not be negative, and "
                             "PHOTOPIPE_WEBHOOK_TIMEOUT must be positive")
        if self.upload_expires <= 0:
            raise ValueError("PHOTOPIPE_UPLOAD_EXPIRES must be a positive number of seconds")
        if self.http_body_timeout <= 0:
            raise ValueError("PHOTOPIPE_HTTP_BODY_TIMEOUT must be a positive number of seconds")
        if self.secret_key is not None and len(self.secret_key) < 16:
            raise ValueError("PHOTOPIPE_SECRET_KEY must be at least 16 characters")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"PHOTOPIPE_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, "
                             f"not {self.log_format!r}")

    @property
    def soft_time_limit(self) -> int:
        """When a render is asked to stop (``TimedOut``), before the hard limit kills it.

        A tenth of the limit, at least one second and at most thirty, is left for the job to
        record its ending: 300 s gives 270 s, 31 s gives 28 s, 2 s gives 1 s.
        """
        return self.task_time_limit - min(30, max(1, self.task_time_limit // 10))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default: ``os.environ``).

        Raises:
            ValueError: a variable is set to something that cannot be used.
        """
        env = os.environ if env is None else env
        data_dir = Path(env.get("PHOTOPIPE_DATA_DIR", str(DEFAULT_DATA_DIR))).resolve()
        defaults, encoding = Limits(), Encoding()
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
            # Outages (S3, database, broker) do not count: only attempts that failed for a
            # reason of their own (time limit, memory, a bug, a worker that died).
            max_attempts=_int(env, "PHOTOPIPE_MAX_ATTEMPTS", 5),
            # Seconds a worker may spend on one photo before it is killed; must stay below the
            # broker's consumer timeout (RabbitMQ's default is 30 minutes).
            task_time_limit=_int(env, "PHOTOPIPE_TASK_TIME_LIMIT", 300),
            # Seconds a job keeps retrying through an outage before it is failed `unavailable`.
            outage_patience=_float(env, "PHOTOPIPE_OUTAGE_PATIENCE", 3600.0),
            # Seconds before the first retry; each next one waits twice as long, up to the max
            # (jittered). A time limit's retry starts from the same base.
            retry_backoff=_float(env, "PHOTOPIPE_RETRY_BACKOFF", 1.0),
            retry_backoff_max=_float(env, "PHOTOPIPE_RETRY_BACKOFF_MAX", 60.0),
            # Seconds `submit` retries a transient failure before it gives up (the web tier
            # is waiting for it).
            submit_patience=_float(env, "PHOTOPIPE_SUBMIT_PATIENCE", 15.0),
            # Seconds a photo may wait with no job in the outbox (queued, or processing past
            # the task's time limit) before the stuck sweep gives it a new one: its job was
            # lost by the broker. The workers sweep every quarter of it.
            stuck_after=_float(env, "PHOTOPIPE_STUCK_AFTER", 900.0),
            # Milliseconds any one SQL statement, and any wait for a row lock, may take.
            statement_timeout_ms=_int(env, "PHOTOPIPE_DB_STATEMENT_TIMEOUT_MS", 30_000),
            lock_timeout_ms=_int(env, "PHOTOPIPE_DB_LOCK_TIMEOUT_MS", 10_000),
            # Whether reads where staleness is harmless (status counts, the backlog exporter,
            # reprocess selection, user listings, the API's photo document) may go to a
            # standby: one listed in a multi-host database URL (target_session_attrs
            # prefer-standby). A read that must see a write goes where the write is replayed.
            read_from_standbys=_flag(env, "PHOTOPIPE_READ_FROM_STANDBYS", False),
            # Seconds a standby's data may lag behind what it has received before such reads
            # go to the primary instead.
            standby_max_lag=_float(env, "PHOTOPIPE_STANDBY_MAX_LAG", 5.0),
            # `plain` lines for people, or `json`: one object per line, a line per finished job
            # with its stage timings, for a log pipeline.
            log_format=env.get("PHOTOPIPE_LOG_FORMAT") or "plain",
            # Where a worker with --metrics-port keeps its processes' metric files (one
            # directory per worker; default: one per port under the system's temp directory).
            metrics_dir=Path(env["PHOTOPIPE_METRICS_DIR"]).resolve()
            if env.get("PHOTOPIPE_METRICS_DIR") else None,
            # The HTTP API's signing key: upload tickets and local file URLs (HMAC-SHA256).
            # `photopipe serve` refuses to start without it, but on the embedded default.
            secret_key=env.get("PHOTOPIPE_SECRET_KEY") or None,
            # Where renditions are public (a CDN, a public bucket): their URLs are
            # <base>/<key>; unset, the API hands out presigned (or, locally, signed) URLs.
            public_base_url=(env.get("PHOTOPIPE_PUBLIC_BASE_URL") or "").rstrip("/") or None,
            # Seconds the API waits for the next bytes of a request body before it drops the
            # client.
            http_body_timeout=_float(env, "PHOTOPIPE_HTTP_BODY_TIMEOUT", 30.0),
            # Uploads one user may start a minute, across every serve process (429 past it,
            # with Retry-After); 0 for no limit.
            uploads_per_minute=_int(env, "PHOTOPIPE_UPLOADS_PER_MINUTE", 0),
            # Seconds a resumable upload may take from its creation to its last byte; after
            # that it is gone (404), and `photopipe gc` removes what it left.
            upload_expires=_float(env, "PHOTOPIPE_UPLOAD_EXPIRES", 86400.0),
            # Where the ending of every photo (photo.ready, photo.failed, photo.deleted) is
            # POSTed, signed per Standard Webhooks with the secret (whsec_<base64>); unset:
            # no webhooks.
            webhook_url=env.get("PHOTOPIPE_WEBHOOK_URL") or None,
            webhook_secret=env.get("PHOTOPIPE_WEBHOOK_SECRET") or None,
            # Seconds a webhook is retried (with the jobs' backoff) before it is given up, and
            # seconds one delivery may take.
            webhook_patience=_float(env, "PHOTOPIPE_WEBHOOK_PATIENCE", 86400.0),
            webhook_timeout=_float(env, "PHOTOPIPE_WEBHOOK_TIMEOUT", 10.0),
            # Origins whose pages may call the API from a browser (comma-separated; `*` for
            # any): CORS preflights answered, the Location, ETag and tus headers exposed.
            cors_origins=tuple(o.strip().rstrip("/") for o in
                               (env.get("PHOTOPIPE_CORS_ORIGINS") or "").split(",")
                               if o.strip()),
            limits=Limits(
                # Largest width x height accepted, checked from the header before decoding.
                max_pixels=_int(env, "PHOTOPIPE_MAX_PIXELS", defaults.max_pixels),
                # Largest upload accepted, in bytes.
                max_bytes=_int(env, "PHOTOPIPE_MAX_BYTES", defaults.max_bytes),
                # Most frames an animation may declare (only the first is rendered).
                max_frames=_int(env, "PHOTOPIPE_MAX_FRAMES", defaults.max_frames),
            ),
            encoding=Encoding(
                # jpegli (default) or libjpeg-turbo.
                jpeg_encoder=env.get("PHOTOPIPE_JPEG_ENCODER") or encoding.jpeg_encoder,
                jpeg_quality=_optional(env, "PHOTOPIPE_JPEG_QUALITY", _int),
                jpeg_progressive=_optional(env, "PHOTOPIPE_JPEG_PROGRESSIVE", _flag),
                jpeg_optimize=_optional(env, "PHOTOPIPE_JPEG_OPTIMIZE", _flag),
                # Chroma subsampling: 4:2:0 (smallest), 4:2:2 or 4:4:4 (sharpest colour edges).
                jpeg_subsampling=env.get("PHOTOPIPE_JPEG_SUBSAMPLING") or None,
                webp_quality=_int(env, "PHOTOPIPE_WEBP_QUALITY", encoding.webp_quality),
                # libwebp's effort, 0 (fastest) to 6 (smallest).
                webp_method=_int(env, "PHOTOPIPE_WEBP_METHOD", encoding.webp_method),
            ),
        )


def _optional(env: Mapping[str, str], name: str,
              parse: Callable[[Mapping[str, str], str, V], V]) -> V | None:
    """``env[name]`` parsed by ``parse``, or None when it is unset or empty."""
    if not (env.get(name) or "").strip():
        return None
    return parse(env, name, cast("V", None))


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """``env[name]`` as a yes/no (1/0, true/false, yes/no, on/off), or ``default``."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), not {env[name]!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(env, name, default, int, "an integer")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float, "a number")


def _number(env: Mapping[str, str], name: str, default: N, kind: Callable[[str], N],
            what: str) -> N:
    """``env[name]`` parsed by ``kind`` (underscores allowed as in ``1_000``), or ``default``
    when unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw.replace("_", ""))
    except ValueError as exc:
        raise ValueError(f"{name} must be {what}, not {raw!r}") from exc
