"""``include("pipeline.web.django.urls")``: ``ticket``."""

from __future__ import annotations

from django.urls import path

from pipeline.web.django import views

urlpatterns = [path("ticket", views.ticket, name="photopipe-ticket")]
