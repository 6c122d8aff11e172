"""``python -m almanac.cli.plugin``: the same program as ``kubectl-almanac``."""

import sys

from almanac.cli.plugin import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
