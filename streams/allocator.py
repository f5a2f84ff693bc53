"""Give freed memory back to the OS: the C allocator's part of a worker's RSS.

glibc's malloc keeps blocks freed in the middle of its heap for reuse and returns
only the top of the heap to the OS. A worker's long-lived state (user records, cells)
is allocated all the time between short-lived fetch buffers, encodings and the dedupe
map's merge arrays, so the heap grows holes that hold nothing but stay in the RSS.
``malloc_trim`` returns the free pages of the whole heap; the maintenance timer calls
it every 5 seconds (1-25 ms a call). A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_TRIM = _malloc_trim()


def trim() -> bool:
    """Return the heap's free pages to the OS; True if any were."""
    return _TRIM is not None and bool(_TRIM(0))
