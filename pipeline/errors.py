"""The errors photopipe raises, and the one distinction the retry policy needs.

::

    PhotopipeError
    ├── PermanentError            retrying cannot help: fail the job at once
    │   ├── ImageRejected         the upload is bad; ``code`` is stable, the message one line
    │   │   ├── UnsupportedFormat     code ``unsupported_format``
    │   │   ├── TooManyPixels         code ``too_many_pixels``
    │   │   ├── TooLarge              code ``too_large``
    │   │   ├── TooManyFrames         code ``too_many_frames``
    │   │   ├── Truncated             code ``truncated``
    │   │   └── Corrupt               code ``corrupt``
    │   ├── ObjectNotFound        a key the job names is not in the object store
    │   ├── StorageRejected       the object store refuses the request (credentials, bucket)
    │   ├── PhotoNotFound         a photo id the job names has no row
    │   └── TooManyAttempts       the job was tried more often than allowed (a backstop)
    └── TransientError            a dependency is down or slow: retry with backoff
        ├── StorageUnavailable
        ├── DatabaseUnavailable
        └── BrokerUnavailable

Library exceptions (Pillow's, boto3's, psycopg's) are translated into these at the edge with
``raise ... from exc``, so callers never need to know which library failed.
"""

from __future__ import annotations

from typing import ClassVar


class PhotopipeError(Exception):
    """Base of every error photopipe raises on purpose."""


class PermanentError(PhotopipeError):
    """Retrying the same job cannot succeed."""


class TransientError(PhotopipeError):
    """A dependency failed in a way that a later retry may not."""


class ImageRejected(PermanentError):
    """The upload is not a picture photopipe will render.

    ``code`` is a stable machine-readable identifier stored on the photo row and printed by the
    CLI; the message is one human-readable line.
    """

    code: ClassVar[str] = "rejected"


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


class StorageRejected(PermanentError):
    """The object store refused the request in a way retrying cannot fix (4xx but not found)."""


class PhotoNotFound(PermanentError):
    """The metadata store has no photo with the requested id."""


class TooManyAttempts(PermanentError):
    """A photo's attempts count passed the limit: whatever keeps failing, stop trying."""

    code = "too_many_attempts"


class StorageUnavailable(TransientError):
    """The object store could not be reached or answered with a server-side error."""


class DatabaseUnavailable(TransientError):
    """The metadata store could not be reached or the transaction must be retried."""


class BrokerUnavailable(TransientError):
    """The message broker could not be reached or did not confirm a publish."""
