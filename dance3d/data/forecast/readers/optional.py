"""Optional packages of the readers: a clear message saying what to install when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from dance3d.errors import Dance3dError


class MissingPackageError(Dance3dError, ImportError):
    """A reader or shipped grid needs a package that is not installed; the message says which."""


def require(module: str, *, install: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise ``MissingPackageError`` naming the ``pip``/``apt-get`` command."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingPackageError(
            f"{purpose} needs the Python package '{module}': {install} (or pip install 'dance3d[forecast]')"
        ) from error
