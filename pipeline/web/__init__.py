"""The HTTP face: the door the web tier and its apps use (``photopipe serve``).

- :mod:`~pipeline.web.tickets`: upload tickets, HMAC-signed, that authorise every request.
- :mod:`~pipeline.web.app`: the routes, each a thin handler over one use case.
- :mod:`~pipeline.web.body`: an upload's body read under the byte limit, sniffed, timed.
- :mod:`~pipeline.web.door`: what handlers reach the use cases through; the ticket check.
- :mod:`~pipeline.web.tus`: resumable uploads (tus 1.0.0) over :mod:`pipeline.uploads`.
- :mod:`~pipeline.web.errors`: the one table from errors to HTTP statuses and codes.
- :mod:`~pipeline.web.server`: the app over the deployment's settings, for uvicorn.
- :func:`picture` (:mod:`~pipeline.web.markup`): the HTML a page shows a photo with.
"""

from pipeline.web.markup import picture

__all__ = ["picture"]
