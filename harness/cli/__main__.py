"""``python -m harness.cli``: the ``xhdr`` command, as the installed script runs it."""

import sys

from harness.cli.main import main

sys.exit(main())
