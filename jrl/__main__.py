"""``python -m jrl ...``: the ``jrl`` command line (:mod:`jrl.cli`)."""

import sys

from jrl.cli import main

sys.exit(main())
