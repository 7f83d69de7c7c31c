"""The one compiled part of photopipe: filters/_fused.c (everything else is in setup.cfg)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "filters._fused", ["filters/_fused.c"],
    # -ffp-contract=off: no fused multiply-add, so the kernel rounds exactly as numpy does.
    extra_compile_args=["-O3", "-ffp-contract=off", "-std=c11"],
)])
