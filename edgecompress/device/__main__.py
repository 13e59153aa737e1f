"""``python -m edgecompress.device`` (and the zipapp's entry point): the on-device runner."""
import sys

from .runner import main

sys.exit(main())
