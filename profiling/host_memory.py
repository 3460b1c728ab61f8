"""Keep freed host memory in the process, so steady-state CPU inference stops page-faulting.

glibc serves large blocks with ``mmap`` and gives them back on ``free`` (and trims the heap), so
every forward pass touches its activations' pages afresh (``benchmarks/host_memory.py``: the
``tiny`` stem 3-4x faster at 16x64x64, batch 8, with freed memory retained). The cost: resident
memory stays at its peak. Dense and compact models benefit alike; time both under the same setting.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1


def retain_freed_memory() -> bool:
    """No ``mmap`` for large blocks and no heap trimming from now on. False (nothing changed) where the
    C library has no glibc ``mallopt``."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
