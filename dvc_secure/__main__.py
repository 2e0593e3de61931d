"""``python -m dvc_secure``: the command-line interface."""

import sys

from dvc_secure.cli.main import main

sys.exit(main())
