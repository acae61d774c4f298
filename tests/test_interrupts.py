"""jrl.interrupts.watch_signals: signals heard by a watcher thread, and nothing of it
left behind when the block ends, however it ends."""

import os
import signal
import sys
import threading
import time

import pytest

from jrl.interrupts import watch_signals


def watchers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "jrl-signals"]


def wait_for(condition, seconds=5.0):
    deadline = time.perf_counter() + seconds
    while not condition() and time.perf_counter() < deadline:
        time.sleep(0.01)
    return condition()


def test_signals_reach_the_watcher_and_everything_is_put_back():
    """SIGTERM's handler is the system default (it would end the process): watched all
    the same, as Slurm's preemption must be."""
    heard = []
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    previous_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(previous_fd)
    with watch_signals(heard.append, (signal.SIGTERM, signal.SIGINT)) as watching:
        assert watching and len(watchers()) == 1
        signal.raise_signal(signal.SIGTERM)  # default: the process would end here
        signal.raise_signal(signal.SIGINT)  # default: KeyboardInterrupt here
        assert wait_for(lambda: len(heard) == 2)
    assert heard == [signal.SIGTERM, signal.SIGINT]
    assert {number: signal.getsignal(number) for number in before} == before
    assert signal.set_wakeup_fd(previous_fd) == previous_fd and watchers() == []


def test_one_sending_delivered_twice_is_heard_once():
    """`timeout -s INT` signals the command and then its process group: now and then
    both deliveries were heard, microseconds apart, and jrl took them for a second
    Ctrl-C (exit at once, no checkpoint). A press SAME_SENDING_S later is a second."""
    from jrl.interrupts import SAME_SENDING_S

    heard = []
    with watch_signals(heard.append):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        assert wait_for(lambda: len(heard) == 1)
        time.sleep(0.2)
        assert heard == [signal.SIGINT]
        time.sleep(SAME_SENDING_S)
        os.kill(os.getpid(), signal.SIGINT)
        assert wait_for(lambda: len(heard) == 2)
    assert heard == [signal.SIGINT, signal.SIGINT]


def test_an_exception_in_the_block_puts_everything_back():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), watch_signals(lambda number: None):
        raise KeyboardInterrupt
    assert signal.getsignal(signal.SIGINT) is before and watchers() == []
    # The default handler is back: the next Ctrl-C raises again.
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_outside_the_main_thread_nothing_is_watched():
    result = []

    def run():
        with watch_signals(lambda number: None) as watching:
            result.append(watching)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert result == [False] and watchers() == []


def test_a_signal_the_watcher_did_not_see_goes_to_the_restored_handler():
    """One that arrives after the wake-up fd is put back reaches only the block's own
    handler (here called as Python calls it): it is sent again on the way out, so a
    late Ctrl-C still raises KeyboardInterrupt instead of vanishing."""
    heard = []
    with pytest.raises(KeyboardInterrupt), watch_signals(heard.append):
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
    assert heard == [] and watchers() == []


def test_a_late_signal_reaches_an_outer_watcher_once():
    """Nested blocks: a signal that comes after the inner block put the outer's wake-up
    fd back is written there by Python (the outer watcher hears it) and also reaches the
    inner block's handler; raising it again wrote it a second time, and an outer
    jrl train took one Ctrl-C for two (exiting at once)."""
    outer, inner = [], []
    with watch_signals(outer.append):
        outer_fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(outer_fd)
        with watch_signals(inner.append):
            os.write(outer_fd, bytes([signal.SIGINT]))  # what Python's C handler writes
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # and then the handler
        assert wait_for(lambda: len(outer) >= 1)
        time.sleep(0.2)
    assert outer == [signal.SIGINT] and inner == [] and watchers() == []


def test_a_signal_the_block_does_not_watch_reaches_the_wake_up_fds_owner_before():
    """asyncio's signal handlers and an outer block hear signals through the wake-up fd
    the block takes over: one the block does not watch is written there as it comes
    (it had been dropped, and an outer jrl block's SIGTERM became a kill at its end)."""
    outer, inner, after = [], [], []
    before = signal.signal(signal.SIGTERM, lambda number, _: after.append(number))  # not a kill
    try:
        with watch_signals(outer.append, (signal.SIGTERM,)):
            with watch_signals(inner.append, (signal.SIGINT,)):
                signal.raise_signal(signal.SIGTERM)
                assert wait_for(lambda: outer == [signal.SIGTERM])
            time.sleep(0.2)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert outer == [signal.SIGTERM] and inner == after == [] and watchers() == []


def test_watching_no_signals_watches_nothing():
    import threading

    from jrl.interrupts import watch_signals

    with watch_signals(lambda number: None, ()) as watching:
        assert watching is False
        assert not [t for t in threading.enumerate() if t.name == "jrl-signals"]


def test_a_second_interrupt_does_not_end_a_notebook_kernel():
    """A second press of a notebook's stop button ended the kernel (os._exit), and
    every variable of the session with it: in a kernel (IPython's shell with a
    kernel) the call under way finishes instead; a plain process still exits at once."""
    import subprocess
    import sys

    script = (
        "import sys, types\n"
        "if sys.argv[1] == 'kernel':\n"
        "    shell = types.SimpleNamespace(kernel=object())\n"
        "    sys.modules['IPython'] = types.SimpleNamespace(get_ipython=lambda: shell)\n"
        "from jrl.interrupts import exit_at_once\n"
        "exit_at_once('jrl: second Ctrl-C: exiting at once')\n"
        "print('still here')\n"
    )
    for where, status, said in [
        ("kernel", 0, "jrl: interrupted again: a notebook kernel is not ended"),
        ("plain", 130, "jrl: second Ctrl-C: exiting at once"),
    ]:
        done = subprocess.run(
            [sys.executable, "-c", script, where], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == status and said in done.stderr, done.stderr
        assert ("still here" in done.stdout) == (where == "kernel")


def test_a_signal_named_twice_is_watched_once_and_its_handler_put_back():
    """The second install returned the block's own handler as the one before, which
    the block then put back: its SIGINT handler outlived it, Ctrl-C doing nothing."""
    before = signal.getsignal(signal.SIGINT)
    heard = []
    with watch_signals(heard.append, (signal.SIGINT, signal.SIGINT)):
        signal.raise_signal(signal.SIGINT)
        assert wait_for(lambda: heard == [signal.SIGINT])
    assert signal.getsignal(signal.SIGINT) is before and watchers() == []


def test_sigint_is_the_last_handler_swapped(monkeypatch):
    """Until its handler is swapped a Ctrl-C raises KeyboardInterrupt: SIGINT goes last,
    so none lands after another signal's handler was taken over (and left so)."""
    installed = []
    original = signal.signal

    def recording(number, handler):
        installed.append(number)
        return original(number, handler)

    monkeypatch.setattr(signal, "signal", recording)
    with watch_signals(lambda number: None, (signal.SIGINT, signal.SIGTERM)):
        assert installed == [signal.SIGTERM, signal.SIGINT]


def test_ipython_outside_a_kernel_is_no_notebook(monkeypatch):
    """IPython in a terminal (a shell without a kernel) is a plain process: a second
    Ctrl-C there ends it at once; only a kernel's shell is spared."""
    import types

    from jrl.interrupts import in_notebook_kernel

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not in_notebook_kernel()
    terminal = types.SimpleNamespace()
    ipython = types.SimpleNamespace(get_ipython=lambda: terminal)
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert not in_notebook_kernel()
    terminal.kernel = object()
    assert in_notebook_kernel()
    ipython.get_ipython = lambda: None  # IPython imported, no shell running
    assert not in_notebook_kernel()


def test_a_late_signal_is_handed_to_the_outer_handler_not_sent_again():
    """The late signal's handler runs after Python's C handler wrote it to the outer
    wake-up fd (the main thread busy in between): sending it again on the way out wrote
    it there a second time, later than the outer block takes for one sending, and the
    outer block heard two Ctrl-Cs for one."""
    outer = []
    with watch_signals(outer.append):
        outer_fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(outer_fd)
        with watch_signals(lambda number: None):
            os.write(outer_fd, bytes([signal.SIGINT]))  # what Python's C handler writes
            assert wait_for(lambda: outer == [signal.SIGINT])
            time.sleep(0.1)  # more than SAME_SENDING_S: a second sending would count
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # and then the handler
        time.sleep(0.2)
    assert outer == [signal.SIGINT] and watchers() == []


def test_exit_at_once_ends_the_process_from_the_watcher_thread():
    """A second Ctrl-C is heard on the watcher thread, where SystemExit would end only
    that thread while the main thread waits in XLA: the whole process ends, 130."""
    import subprocess

    script = (
        "import threading, time\n"
        "from jrl.interrupts import exit_at_once\n"
        "thread = threading.Thread(target=exit_at_once, args=('jrl: second Ctrl-C',))\n"
        "thread.start()\n"
        "thread.join()\n"
        "time.sleep(0.5)\n"
        "print('still here')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130 and "still here" not in done.stdout, done.stderr
    assert "jrl: second Ctrl-C" in done.stderr
