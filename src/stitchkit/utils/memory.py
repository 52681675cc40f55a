"""How much memory this machine has free, without torch or extra dependencies."""

from __future__ import annotations

import contextlib
import os


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation: Linux's ``MemAvailable`` (free memory plus the
    caches the kernel would give back), else the free physical pages (``os.sysconf``); None where
    neither can be read."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    with contextlib.suppress(AttributeError, OSError, ValueError):
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    return None


def gib(n: float) -> str:
    """``n`` bytes in GiB, as the messages write sizes (``40.0 GiB``; ``0.02 GiB`` below one)."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**30:.2g} GiB"
