"""`python -m almanac ...` is the `almanac` command."""

import sys

from almanac.cli.main import main

sys.exit(main())
