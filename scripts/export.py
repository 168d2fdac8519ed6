"""Kept for old commands: the same as `tunelab export ...` (see `tunelab --help`)."""

import sys

from tunelab.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
