"""The errors photopipe raises, and the distinctions the retry policy needs.

::

    PhotopipeError
    ├── PermanentError            retrying cannot help: end the job at once
    │   ├── ImageRejected         a verdict on the upload's bytes; ``code`` is stable
    │   │   ├── UnsupportedFormat     code ``unsupported_format``
    │   │   ├── TooManyPixels         code ``too_many_pixels``
    │   │   ├── TooLarge              code ``too_large``
    │   │   ├── TooManyFrames         code ``too_many_frames``
    │   │   ├── Truncated             code ``truncated``
    │   │   └── Corrupt               code ``corrupt``
    │   ├── ObjectNotFound        a key the job names is not in the object store
    │   ├── PhotoNotFound         a photo id the job names has no row
    │   └── ConfigurationError    photopipe is set up wrong; the message says what to fix
    │       ├── StorageRejected       credentials, bucket, permissions (S3 4xx)
    │       ├── DatabaseRejected      authentication, missing database, missing schema
    │       └── BrokerRejected        authentication, missing vhost
    ├── AttemptFailed             this render went wrong, not the photo: retry within a bound
    │   ├── TimedOut              code ``timeout``: over the task's time limit
    │   ├── OutOfMemory           code ``out_of_memory``: an allocation failed, or a decode
    │   │                         needs more than the process can get (never a verdict)
    │   └── InternalError         code ``internal_error``: a bug of ours (the type is kept)
    └── TransientError            a dependency is down or slow: wait it out, spend no attempt
        ├── StorageUnavailable
        ├── DatabaseUnavailable
        └── BrokerUnavailable

Library exceptions (Pillow's, boto3's, psycopg's, sqlite3's, kombu's) are translated into these
once, at the module that calls the library, with ``raise ... from exc``. Only
:class:`ImageRejected` is a verdict on an image; everything else that ends a job has a code of
its own (:data:`ENDING_CODES`).
"""

from __future__ import annotations

from typing import ClassVar


class PhotopipeError(Exception):
    """Base of every error photopipe raises on purpose."""

    code: ClassVar[str] = "error"


class PermanentError(PhotopipeError):
    """Retrying the same job cannot succeed."""


class TransientError(PhotopipeError):
    """A dependency failed in a way that a later retry may not."""

    code = "unavailable"


class AttemptFailed(PhotopipeError):
    """One render attempt failed for a reason of its own: retried while attempts remain."""


class ImageRejected(PermanentError):
    """The upload is not a picture photopipe will render.

    ``code`` is a stable machine-readable identifier stored on the photo row and printed by the
    CLI; the message is one human-readable line.
    """

    code = "rejected"


class UnsupportedFormat(ImageRejected):
    code = "unsupported_format"


class TooManyPixels(ImageRejected):
    code = "too_many_pixels"


class TooLarge(ImageRejected):
    code = "too_large"


class TooManyFrames(ImageRejected):
    code = "too_many_frames"


class Truncated(ImageRejected):
    code = "truncated"


class Corrupt(ImageRejected):
    code = "corrupt"


class ObjectNotFound(PermanentError):
    """The object store has nothing under the requested key."""

    code = "missing_original"


class PhotoNotFound(PermanentError):
    """The metadata store has no photo with the requested id."""

    code = "no_such_photo"


class ConfigurationError(PermanentError):
    """photopipe's own set-up is wrong (credentials, bucket, database): not the photo's fault."""

    code = "configuration"


class StorageRejected(ConfigurationError):
    """The object store refused the request in a way retrying cannot fix (4xx but not found)."""

    code = "storage_rejected"


class DatabaseRejected(ConfigurationError):
    """The database refused photopipe (authentication, no such database or table)."""

    code = "database_rejected"


class BrokerRejected(ConfigurationError):
    """The broker refused photopipe (wrong credentials, no such vhost, no permission)."""

    code = "broker_rejected"


class TimedOut(AttemptFailed):
    """The render ran past the task's time limit."""

    code = "timeout"


class OutOfMemory(AttemptFailed):
    """An allocation failed, or a decode would need more than the process can get (its
    address-space limit, its memory cgroups, the machine): this process's state, not the
    image's, so it is retried like any attempt that failed for a reason of its own."""

    code = "out_of_memory"


class InternalError(AttemptFailed):
    """An exception photopipe did not expect: a bug, recorded with its type and retried."""

    code = "internal_error"


class StorageUnavailable(TransientError):
    """The object store could not be reached or answered with a server-side error."""


class DatabaseUnavailable(TransientError):
    """The metadata store could not be reached or the transaction must be retried."""


class BrokerUnavailable(TransientError):
    """The message broker could not be reached or did not confirm a publish."""


# Codes a job can end with that are not verdicts on the image, with what they mean.
ENDING_CODES: dict[str, str] = {
    "missing_original": "the original is not in the object store",
    "timeout": "every attempt ran past the time limit",
    "out_of_memory": "every attempt ran out of memory",
    "internal_error": "every attempt hit an unexpected exception (a bug)",
    "worker_lost": "the worker process died during every attempt (killed, or out of memory)",
    "too_many_attempts": "tried more often than PHOTOPIPE_MAX_ATTEMPTS for no recorded reason",
    "unavailable": "a dependency stayed down longer than PHOTOPIPE_OUTAGE_PATIENCE",
    "storage_rejected": "the object store refuses photopipe's requests (configuration)",
    "database_rejected": "the database refuses photopipe (configuration)",
    "dead_lettered": "the broker's delivery limit was reached",
}


def classify(exc: BaseException) -> PhotopipeError:
    """``exc`` as photopipe's error: ours stay as they are, MemoryError is
    :class:`OutOfMemory`, anything else :class:`InternalError` naming its type."""
    if isinstance(exc, PhotopipeError):
        return exc
    if isinstance(exc, MemoryError):
        return OutOfMemory(f"MemoryError: {exc}" if str(exc) else "MemoryError")
    return InternalError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"[:500])
