"""Worker processes that die with the process that started them.

A process pool's workers outlive a driver killed with ``kill -9`` (nothing tells them), keep computing
units nobody will record, and keep the pool's resource tracker alive. :func:`exit_with_parent` starts
a daemon thread in the worker that polls its parent's pid and ends the worker at once when the parent
is gone (the worker is then re-parented, so ``getppid`` changes). Polling works on every POSIX system
and, unlike ``PR_SET_PDEATHSIG``, does not fire when merely the thread that spawned the worker ends.
"""

from __future__ import annotations

import os
import threading
import time

#: exit status of a worker whose parent died (128 + SIGKILL, as if it had been killed with it)
ORPHAN_EXIT_CODE = 137


def parent_alive(parent_pid: int) -> bool:
    """Whether this process is still the child of ``parent_pid``."""
    return os.getppid() == parent_pid


def exit_with_parent(parent_pid: int | None = None, interval: float = 0.25) -> threading.Thread:
    """Watch the parent (default: the current one) every ``interval`` seconds; when it has died, end
    this process immediately with :data:`ORPHAN_EXIT_CODE`, without running cleanup that could
    block (``os._exit``). Returns the watching thread (a daemon)."""
    parent = os.getppid() if parent_pid is None else parent_pid

    def watch() -> None:
        while parent_alive(parent):
            time.sleep(interval)
        os._exit(ORPHAN_EXIT_CODE)

    thread = threading.Thread(target=watch, name="stitchkit-exit-with-parent", daemon=True)
    thread.start()
    return thread
