"""jrl.interrupts.watch_signals: signals heard by a watcher thread, and nothing of it
left behind when the block ends, however it ends."""

import os
import signal
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
