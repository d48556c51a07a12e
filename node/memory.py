"""Giving freed memory back to the operating system (glibc only; elsewhere a no-op).

Request bodies are read into buffers of up to 1 MiB. glibc serves such
buffers from its heap once its adaptive mmap threshold has risen, and memory
freed inside the heap stays with the process: after a flood of stalled bodies
is closed, the node would keep hundreds of megabytes it no longer uses.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: glibc's `mallopt` parameter number for the mmap threshold (malloc.h).
M_MMAP_THRESHOLD = -3
#: Blocks at least this large get their own mapping, returned whole when freed.
MMAP_THRESHOLD = 128 * 1024


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None  # not glibc
    return libc


_LIBC = _libc()


def fix_mmap_threshold() -> bool:
    """Keep large blocks in their own mappings (glibc's threshold no longer adapts upwards).

    Returns:
        Whether the setting was applied.
    """
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(MMAP_THRESHOLD)))


def release_freed_memory() -> None:
    """Return the heap's free pages to the operating system (after many connections closed)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(ctypes.c_size_t(0))
