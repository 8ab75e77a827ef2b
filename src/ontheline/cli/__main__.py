"""``python -m ontheline.cli``: the command line."""

import sys

from ontheline.cli import main

sys.exit(main())
