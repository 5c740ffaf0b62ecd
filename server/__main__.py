"""`python -m logtallyd` is `logtallyd`."""
import sys

from logtallyd.daemon.cli import main

sys.exit(main())
