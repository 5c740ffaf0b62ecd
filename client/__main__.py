"""`python -m logtally` is the `logtally` CLI."""
import sys

from logtally.cli import main

sys.exit(main())
