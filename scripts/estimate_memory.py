"""Kept for old commands: the same as `tunelab estimate-memory ...` (see `tunelab --help`)."""

import sys

from tunelab.cli import main

if __name__ == "__main__":
    sys.exit(main(["estimate-memory", *sys.argv[1:]]))
