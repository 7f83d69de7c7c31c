"""``{% photopipe_picture photo sizes="..." alt="..." css_class="..." %}``: the markup of a
photo's document, from :func:`pipeline.web.picture` (which escapes every attribute)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template
from django.utils.safestring import mark_safe

from pipeline.web.markup import picture

register = template.Library()


@register.simple_tag  # type: ignore[untyped-decorator]  # Django has no type hints
def photopipe_picture(photo: Mapping[str, Any], sizes: str = "100vw", alt: str = "",
                      css_class: str | None = None) -> str:
    # picture() escapes every attribute: its markup is safe as it is
    markup: str = mark_safe(picture(photo, sizes=sizes, alt=alt, css_class=css_class))
    return markup
