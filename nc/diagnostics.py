"""`check`: the diagnostics of a program without running it (used by ``nc check``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import NCError


def check(src: str, *, name: str = "<program>", shapes: Mapping[str, Sequence[int | None]] | None = None
          ) -> list[NCError]:
    """Every error nc can find in ``src`` at compile time (empty when the program is clean)."""
    from .api import compile_fn

    try:
        compile_fn(src, shapes=shapes, name=name)
    except NCError as e:
        return [e]
    return []
