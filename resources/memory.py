"""Give the memory a finished step freed back to the system before the next step loads.

With the in-process executor every step of a run shares one process, and glibc's allocator
keeps freed heap memory for reuse instead of returning it: on a 4-million-pair log a step
started with the 4 GB its predecessor had freed still counted in the process's RSS. Collecting
garbage and ``malloc_trim(0)`` before a step's first input is read returns it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)  # glibc only


def release_freed_memory() -> None:
    """Collect garbage, then hand free heap pages back to the OS where the C library can."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
