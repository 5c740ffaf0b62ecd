"""`python -m server` is `logtided`."""
import sys

from server.daemon.cli import main

sys.exit(main())
