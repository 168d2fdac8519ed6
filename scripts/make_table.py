"""Kept for old commands: the same as `tunelab table ...` (see `tunelab --help`)."""

import sys

from tunelab.cli import main

if __name__ == "__main__":
    sys.exit(main(["table", *sys.argv[1:]]))
