"""Hand freed memory back to the system between the phases of a run.

Training, evaluation and the export each build large short-lived structures
(compiled steps, score blocks, the converter's graph copies). Python frees
objects in reference cycles only when the cyclic collector runs, and glibc's
malloc keeps freed pages for reuse; so what one phase freed can still count
as resident when the next one reaches its peak. :func:`release_heap` runs the
collector and trims the heap.
"""
from __future__ import annotations

import ctypes
import gc


def release_heap() -> None:
    """Collect cyclic garbage, then return free heap pages to the system (glibc; elsewhere only the collection)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
