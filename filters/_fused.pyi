"""Type stub for the C kernel in _fused.c (see filters.fused)."""

from typing import Any

def apply(src: object, dst: object, pixels: int, table: Any, is_float: bool,
          states: Any, ops: Any, /) -> None: ...
