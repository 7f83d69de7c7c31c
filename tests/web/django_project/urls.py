from typing import Any

from django.http import HttpRequest
from django.shortcuts import render
from django.urls import include, path

PHOTOS = [{"photo_id": "7", "status": "ready", "caption": 'Sunset "over" <the> bay',
           "placeholder": {"thumbhash": "kQgGDYIIapeRhpdhe2aah7X3Kgtc", "color": "#504935",
                           "aspect": 1.3333},
           "renditions": [{"name": "w1080", "format": "jpg", "width": 1080, "height": 810,
                           "bytes": 1, "url": "https://cdn.example/7/w1080.jpg"},
                          {"name": "w1080", "format": "webp", "width": 1080, "height": 810,
                           "bytes": 1, "url": "https://cdn.example/7/w1080.webp"},
                          {"name": "w640", "format": "jpg", "width": 640, "height": 480,
                           "bytes": 1, "url": "https://cdn.example/7/w640.jpg"}]},
          {"photo_id": "8", "status": "processing", "caption": "Soon",
           "placeholder": {"thumbhash": "kQgGDYIIapeRhpdhe2aah7X3Kgtc", "color": "#504935",
                           "aspect": 0.75},
           "renditions": []}]


def feed(request: HttpRequest) -> Any:
    return render(request, "feed.html", {"photos": PHOTOS})


urlpatterns = [path("photopipe/", include("pipeline.web.django.urls")),
               path("feed", feed)]
