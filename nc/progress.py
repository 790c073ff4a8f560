"""The progress bar of a fit: tqdm's, when tqdm is installed (``pip install nc[fit]``).

Without tqdm, ``progress=True`` draws nothing and raises nothing: the bar is a convenience, and
nc's core install stays torch, attrs and numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Progress", "tqdm_class"]


def tqdm_class() -> Any:
    """``tqdm.tqdm``, or None when tqdm is not installed."""
    try:
        return importlib.import_module("tqdm").tqdm
    except ImportError:
        return None


class Progress:
    """A bar of ``total`` epochs on stderr showing the latest loss; inert when not ``enabled``."""

    def __init__(self, total: int, enabled: bool, label: str = "fit") -> None:
        cls = tqdm_class() if enabled else None
        self._bar = None if cls is None else cls(total=total, desc=label, unit="epoch", leave=True)
        self._done = 0

    def update(self, done: int, loss: float) -> None:
        """Record that ``done`` epochs are finished, the last with this loss."""
        if self._bar is None:
            return
        self._bar.set_postfix_str(f"loss {loss:.4e}", refresh=False)
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
