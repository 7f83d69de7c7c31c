"""photopipe for a Django web tier (the ``django`` extra): add ``"pipeline.web.django"`` to
``INSTALLED_APPS``, then

* ``{% load photopipe %}{% photopipe_picture photo sizes="(max-width: 600px) 100vw, 600px" %}``
  in a template: :func:`pipeline.web.picture` over a photo's document (as the API answers
  ``GET /v1/photos/{id}``, or :func:`pipeline.documents.document` builds it);
* ``path("photopipe/", include("pipeline.web.django.urls"))``: ``photopipe/ticket`` mints an
  upload ticket for the logged-in user (``PHOTOPIPE_SECRET_KEY`` from the environment, as
  every photopipe process reads it), for the page's uploads straight to ``photopipe serve``.
"""
