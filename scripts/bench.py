"""Kept for old commands: the same as `tunelab bench ...` (key=value arguments, see `tunelab --help`)."""

import sys

from tunelab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
