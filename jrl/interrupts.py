"""Signals heard while the main thread waits inside a compiled call.

Python runs a signal handler in the main thread, between bytecodes: while that thread
waits in XLA (a compiled run, ``block_until_ready``) a Ctrl-C is only noticed when the
call returns, and two Ctrl-Cs before then count as one. :func:`watch_signals` hears
each signal as it arrives instead: its handlers do nothing in the main thread, and a
watcher thread reads the signal numbers that Python's C-level handler writes to the
wake-up fd (``signal.set_wakeup_fd``) at once, calling ``on_signal(number)`` for each.
Nothing is raised in the main thread, so no KeyboardInterrupt lands in the middle of
the code that cleans up after a stopped run.

One sending can arrive twice: coreutils' ``timeout -s INT`` signals the command and then
its whole process group, and now and then both deliveries are heard, microseconds apart
(once in 30 tries here) — which read as a second Ctrl-C, "exit at once", instead of a
checkpoint. The same signal again within :data:`SAME_SENDING_S` of the one heard is
taken for that one; a person's second Ctrl-C comes later. (Timed as the watcher reads
it: two presses while the main thread holds the GIL in one long call are read together
and heard as one; in the compiled calls the watcher waits beside, XLA lets go of it.)
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

EXIT_AT_ONCE = 128 + signal.SIGINT  # a shell's status for a process ended by Ctrl-C
SAME_SENDING_S = 0.02
"""A signal arriving this soon (seconds) after the same one was heard is that one again."""


@contextlib.contextmanager
def watch_signals(
    on_signal: Callable[[int], None], numbers: Sequence[int] = (signal.SIGINT,)
) -> Iterator[bool]:
    """While in the block, call ``on_signal(number)`` from a watcher thread as each of
    ``numbers`` arrives (not again for the same signal within :data:`SAME_SENDING_S`),
    whatever the handler before (SIGTERM's is the system default, which ends the
    process); yields True. Outside the main thread (where signals cannot be handled)
    this does nothing and yields False."""
    if threading.current_thread() is not threading.main_thread() or not numbers:
        yield False
        return
    # Until the last step of the teardown the handlers only count (nothing raises in
    # between, so no watcher, wake-up fd or handler outlives the block); a signal that
    # came after the wake-up fd was put back is handed to the handler restored.
    handled: list[int] = []
    seen: list[int] = []
    previous: dict[int, Any] = {}
    read = write = previous_fd = watcher = None
    installed = threading.Event()  # previous_fd is known

    def watch():
        heard_at: dict[int, float] = {}
        while data := os.read(read, 64):  # b"" once the write end is closed
            for number in data:
                if number in previous:
                    seen.append(number)
                    now = time.monotonic()
                    if now - heard_at.get(number, -math.inf) < SAME_SENDING_S:
                        continue  # the same sending delivered twice
                    heard_at[number] = now
                    on_signal(number)
                else:
                    pass_on(number)

    def pass_on(number: int) -> None:
        # A signal the block does not watch belongs to the wake-up fd's owner before
        # (asyncio's signal handlers, an outer block): written there, as Python would.
        installed.wait()
        if previous_fd is not None and previous_fd >= 0:
            with contextlib.suppress(OSError):  # full (as Python's own write) or closed
                os.write(previous_fd, bytes([number]))

    try:
        read, write = os.pipe()
        os.set_blocking(write, False)
        watcher = threading.Thread(target=watch, name="jrl-signals", daemon=True)
        watcher.start()
        previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        installed.set()
        # SIGINT last: until its handler is swapped, a Ctrl-C raises KeyboardInterrupt.
        for number in sorted(set(numbers), key=lambda number: number == signal.SIGINT):
            previous[number] = signal.signal(number, lambda number, _: handled.append(number))
        yield True
    finally:
        if previous_fd is not None:
            signal.set_wakeup_fd(previous_fd)
        if write is not None:
            os.close(write)
        if watcher is not None:
            watcher.join()
        if read is not None:
            os.close(read)
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number, handler in previous.items():
            if handled.count(number) > seen.count(number):
                # Called, not raised again: raising would also write the signal to the
                # wake-up fd put back, whose owner (an outer watcher, asyncio) has had it.
                if callable(handler):
                    handler(number, None)
                else:
                    signal.raise_signal(number)


def in_notebook_kernel() -> bool:
    """Whether this process is a Jupyter (IPython) kernel: ending it loses the
    notebook's variables, and its stop button sends SIGINT."""
    ipython = sys.modules.get("IPython")  # never imported here
    shell = getattr(ipython, "get_ipython", lambda: None)()
    return getattr(shell, "kernel", None) is not None


def exit_at_once(message: str) -> None:
    """Print ``message`` and end the process now (status 130, as a Ctrl-C), from any
    thread: what a second Ctrl-C asks for while the main thread waits in XLA. In a
    notebook kernel (a second press of the stop button) nothing ends: the kernel would
    be lost with the notebook's state; the call under way finishes first."""
    if in_notebook_kernel():
        print(
            f"{message.split(':', 1)[0]}: interrupted again: a notebook kernel is not ended "
            "(its variables would be lost); the compiled call under way finishes first "
            "(restart the kernel to stop at once)",
            file=sys.stderr,
            flush=True,
        )
        return
    print(message, file=sys.stderr, flush=True)
    os._exit(EXIT_AT_ONCE)
