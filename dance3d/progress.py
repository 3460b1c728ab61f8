"""Progress bars that stay readable in logs: frequent on a terminal, every 15 s otherwise."""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm


def progress_bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """``tqdm`` with a refresh interval suited to where stderr goes."""
    kwargs.setdefault("mininterval", 0.2 if sys.stderr.isatty() else 15.0)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
