"""Compare methods fairly: `python compare.py comparison=<name> [force=true] [launcher=joblib]`
(= `tunelab compare`). tune (equal trials per arm, scored on validation) -> confirm (best setting
over seeds, on test) -> report (table + plots). See docs/comparisons.md.
"""

import os
import sys
from pathlib import Path

# Results land under this checkout (results/comparisons/...) whatever the current directory.
os.environ.setdefault("TUNELAB_ROOT", str(Path(__file__).resolve().parent))

from tunelab.apps.compare import main

if __name__ == "__main__":
    sys.exit(main(sys.argv))
