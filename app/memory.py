"""Keep a long-running process's memory flat across model swaps (glibc's allocator, Linux).

A swap loads a run's arrays (tens of MB) in a worker thread and frees the previous run's. Two glibc behaviours
turn that into growth: the mmap threshold is dynamic (freeing one large mmapped block raises it, up to 32 MB, so
later arrays are carved from the heap arenas instead of their own mappings), and memory freed inside an arena
stays resident until the arena is trimmed. Measured with `bench/soak.py`'s traffic and a swap every few seconds:
+15-20 MiB of RSS per swap, never returned. Fixing the threshold makes large arrays their own mappings again
(returned to the system when freed), and `malloc_trim` after a swap hands back what the arenas freed.
Elsewhere (not glibc, or not Linux) both are no-ops.

The cyclic garbage collector is kept off the loaded heap: the catalogue's titles and genres, the search index
and the imported modules are 180,000 objects that every full collection walked, a 60-100 ms pause of the event
loop every few seconds under load (measured with gc callbacks; the p99 of a list at 16 connections went from
74 to 10 ms without it). `gc.freeze()` after loading moves them to the permanent generation, which collections
skip; a swap unfreezes them once, so the old model's cycles are collected, and freezes the new heap again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from functools import cache

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
# glibc's default starting threshold: blocks of 128 KiB and more get their own mapping.
MMAP_THRESHOLD_BYTES = 128 * 1024


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018  (glibc only: the attribute lookup fails elsewhere)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def fix_mmap_threshold() -> bool:
    """Stop glibc from raising the mmap threshold as blocks are freed; True when it took effect."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def freeze_loaded_heap() -> None:
    """Collect what loading left behind, then keep the collector off every object alive now."""
    gc.collect()
    gc.freeze()


def thaw_heap() -> None:
    """Hand every frozen object back to the collector (at shutdown: a test process starts many apps)."""
    gc.unfreeze()


def release_freed_memory() -> None:
    """Collect cycles (the old model's too) and return the allocator's free memory to the system (after the old
    model is dropped), then freeze the heap that is left."""
    gc.unfreeze()
    freeze_loaded_heap()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
