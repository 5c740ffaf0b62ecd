"""`python -m server` is `logtided`."""
import sys

from server.cli import main

sys.exit(main())
