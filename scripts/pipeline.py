"""Kept for old commands: the same as `tunelab pipeline ...` (see `tunelab --help`)."""

import sys

from tunelab.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))
