"""Shared test set-up."""

import signal

# A test suite started as a background job (`bash .ci/run &`, nohup) begins with SIGINT
# ignored, and so would every `jrl train` it starts: jrl leaves an ignored SIGINT
# alone, as a background job should. The tests of Ctrl-C need it heard, in this
# process (jrl.interrupts) and in the ones it starts (a caught signal is reset to its
# default in a child, where Python installs its own handler; an ignored one stays so).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
