"""Evaluation without training: `python eval.py [run_dir=results/...] [eval=...]` (= `tunelab eval`)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TUNELAB_ROOT", str(Path(__file__).resolve().parent))

from tunelab.apps.eval import main

if __name__ == "__main__":
    sys.exit(main(sys.argv))
