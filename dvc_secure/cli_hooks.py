"""Compatibility entry point for git hooks installed before the layered layout (0.1).

Those hook scripts run ``python -m dvc_secure.cli_hooks NAME``; the next
``dvc-secure install`` rewrites them to ``dvc_secure.cli.hooks``. Nothing else may import it.
"""

import sys

from dvc_secure.cli.hooks import main

if __name__ == "__main__":
    sys.exit(main())
