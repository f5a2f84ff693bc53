"""Give freed memory back to the OS: the C allocator's part of a worker's RSS.

glibc's malloc keeps blocks freed in the middle of its heap for reuse and returns
only the top of the heap to the OS. A worker's long-lived state (user records, cells)
is allocated all the time between short-lived fetch buffers, encodings and the dedupe
map's merge arrays, so the heap grows holes that hold nothing but stay in the RSS.
``malloc_trim`` returns the free pages of the whole heap; the maintenance timer calls
it every 5 seconds (1-25 ms a call).

Trimming cannot return a page that still holds a live block, and glibc puts ever larger
blocks on that heap: each time a block it had mapped on its own (above
``M_MMAP_THRESHOLD``, 128 KiB at first) is freed, it raises the threshold to that
block's size, up to 32 MiB. One freed dedupe merge array, and every fetch buffer and
merge array below its size then lands between the long-lived sketches and user
records, and the heap's free bytes stay resident (``docs/reliability.md``).
:func:`configure` fixes the threshold at 1 MiB: blocks that large are
mapped on their own and unmapped when freed, at a syscall each (tens a second).
Both are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def libc_function(name: str) -> Callable[..., int] | None:
    """A function of the C library, or None where it is not glibc (or lacks it)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        function: Callable[..., int] = getattr(libc, name)
    except (OSError, AttributeError):  # not glibc
        return None
    return function


_TRIM = libc_function("malloc_trim")
_MALLOPT = libc_function("mallopt")
_M_MMAP_THRESHOLD = -3  # malloc.h
#: Blocks at least this large are mapped on their own, and unmapped when freed.
MMAP_THRESHOLD = 1 << 20


def configure(mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold (no more raising it as big blocks are freed)."""
    return _MALLOPT is not None and bool(_MALLOPT(_M_MMAP_THRESHOLD, mmap_threshold))


def trim() -> bool:
    """Return the heap's free pages to the OS; True if any were."""
    return _TRIM is not None and bool(_TRIM(0))
