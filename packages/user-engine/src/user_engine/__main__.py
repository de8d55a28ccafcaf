"""``python -m user_engine``: the ``user-engine`` command."""

import sys

from user_engine.cli import main

sys.exit(main())
