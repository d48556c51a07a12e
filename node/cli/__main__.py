"""`python -m node.cli`: the same as `iarms-node`."""

import sys

from node.cli.parser import main

sys.exit(main())
