"""tunelab entry point: `python train.py [group=option ...] [-m key=a,b,c]` (= `tunelab train`)."""

import os
import sys
from pathlib import Path

# Results land under this checkout (results/<name>/...) whatever the current directory.
os.environ.setdefault("TUNELAB_ROOT", str(Path(__file__).resolve().parent))

from tunelab.apps.train import main

if __name__ == "__main__":
    sys.exit(main(sys.argv))
