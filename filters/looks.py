"""The 26 CSSgram looks (CSSgram 0.1.12, see shared/filters/CSSGRAM_SPEC.md) as recipes.

A recipe is the overlays in paint order (``::before``, then ``::after``) and the CSS filter chain,
which a browser applies to the composite of the picture and its overlays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from filters.css import Step, brightness, contrast, grayscale, hue_rotate, saturate, sepia
from filters.gradient import CLEAR, RGBA, Stop, linear_down, linear_right, radial
from filters.layers import Overlay


@dataclass(frozen=True)
class Recipe:
    """What a look paints over the picture, and the filter chain applied to the result."""

    overlays: tuple[Overlay, ...] = ()
    chain: tuple[Step, ...] = ()


def rgb(r: float, g: float, b: float, a: float = 1.0) -> RGBA:
    return (r, g, b, a)


RECIPES: Mapping[str, Recipe] = MappingProxyType({
    "normal": Recipe(),
    "_1977": Recipe(
        (Overlay("screen", rgb(243, 106, 188, .3)),),
        (contrast(1.1), brightness(1.1), saturate(1.3))),
    "aden": Recipe(
        (Overlay("darken", linear_right(Stop(rgb(66, 10, 14, .2), 0), Stop(CLEAR, 1))),),
        (hue_rotate(-20), contrast(.9), saturate(.85), brightness(1.2))),
    "brannan": Recipe(
        (Overlay("lighten", rgb(161, 44, 199, .31)),),
        (sepia(.5), contrast(1.4))),
    "brooklyn": Recipe(
        (Overlay("overlay", radial(Stop(rgb(168, 223, 193, .4), .7),
                                   Stop(rgb(196, 183, 200), 1))),),
        (contrast(.9), brightness(1.1))),
    "clarendon": Recipe(
        (Overlay("overlay", rgb(127, 187, 227, .2)),),
        (contrast(1.2), saturate(1.35))),
    "earlybird": Recipe(
        (Overlay("overlay", radial(Stop(rgb(208, 186, 142), .2), Stop(rgb(54, 3, 9), .85),
                                   Stop(rgb(29, 2, 16), 1))),),
        (contrast(.9), sepia(.2))),
    "gingham": Recipe(
        (Overlay("soft-light", rgb(230, 230, 250)),),
        (brightness(1.05), hue_rotate(-10))),
    "hudson": Recipe(
        (Overlay("multiply", radial(Stop(rgb(166, 177, 255), .5), Stop(rgb(52, 33, 52), 1)),
                 opacity=.5),),
        (brightness(1.2), contrast(.9), saturate(1.1))),
    "inkwell": Recipe((), (sepia(.3), contrast(1.1), brightness(1.1), grayscale(1))),
    "kelvin": Recipe(
        (Overlay("color-dodge", rgb(56, 44, 52)), Overlay("overlay", rgb(183, 125, 33)))),
    "lark": Recipe(
        (Overlay("color-dodge", rgb(34, 37, 63)), Overlay("darken", rgb(242, 242, 242, .8))),
        (contrast(.9),)),
    "lofi": Recipe(
        (Overlay("multiply", radial(Stop(CLEAR, .7), Stop(rgb(34, 34, 34), 1.5))),),
        (saturate(1.1), contrast(1.5))),
    "maven": Recipe(
        (Overlay("hue", rgb(3, 230, 26, .2)),),
        (sepia(.25), brightness(.95), contrast(.95), saturate(1.5))),
    "mayfair": Recipe(
        (Overlay("overlay", radial(Stop(rgb(255, 255, 255, .8), 0),
                                   Stop(rgb(255, 200, 200, .6), .3),
                                   Stop(rgb(17, 17, 17), .6), at=(.4, .4)), opacity=.4),),
        (contrast(1.1), saturate(1.1))),
    "moon": Recipe(
        (Overlay("soft-light", rgb(160, 160, 160)), Overlay("lighten", rgb(56, 56, 56))),
        (grayscale(1), contrast(1.1), brightness(1.1))),
    "nashville": Recipe(
        (Overlay("darken", rgb(247, 176, 153, .56)), Overlay("lighten", rgb(0, 70, 150, .4))),
        (sepia(.2), contrast(1.2), brightness(1.05), saturate(1.2))),
    "perpetua": Recipe(
        (Overlay("soft-light", linear_down(Stop(rgb(0, 91, 154), 0),
                                           Stop(rgb(230, 193, 61), 1)), opacity=.5),)),
    "reyes": Recipe(
        (Overlay("soft-light", rgb(239, 205, 173), opacity=.5),),
        (sepia(.22), brightness(1.1), contrast(.85), saturate(.75))),
    "rise": Recipe(
        (Overlay("multiply", radial(Stop(rgb(236, 205, 169, .15), .55),
                                    Stop(rgb(50, 30, 7, .4), 1))),
         Overlay("overlay", radial(Stop(rgb(232, 197, 152, .8), 0), Stop(CLEAR, .9)),
                 opacity=.6)),
        (brightness(1.05), sepia(.2), contrast(.9), saturate(.9))),
    "slumber": Recipe(
        (Overlay("lighten", rgb(69, 41, 12, .4)), Overlay("soft-light", rgb(125, 105, 24, .5))),
        (saturate(.66), brightness(1.05))),
    "stinson": Recipe(
        (Overlay("soft-light", rgb(240, 149, 128, .2)),),
        (contrast(.75), saturate(.85), brightness(1.15))),
    "toaster": Recipe(
        (Overlay("screen", radial(Stop(rgb(128, 78, 15), 0), Stop(rgb(59, 0, 59), 1))),),
        (contrast(1.5), brightness(.9))),
    "valencia": Recipe(
        (Overlay("exclusion", rgb(58, 3, 57), opacity=.5),),
        (contrast(1.08), brightness(1.08), sepia(.08))),
    "walden": Recipe(
        (Overlay("screen", rgb(0, 68, 204), opacity=.3),),
        (brightness(1.1), hue_rotate(-10), sepia(.3), saturate(1.6))),
    # willow's ::before declares a gradient as background-color, which browsers drop.
    "willow": Recipe(
        (Overlay("color", rgb(216, 205, 203)),),
        (grayscale(.5), contrast(.95), brightness(.9))),
    "xpro2": Recipe(
        (Overlay("color-burn", radial(Stop(rgb(230, 231, 224), .4),
                                      Stop(rgb(43, 42, 161, .6), 1.1))),),
        (sepia(.3),)),
})
