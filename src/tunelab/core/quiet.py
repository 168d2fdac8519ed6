"""Keep the console to what a user needs: what runs, the progress bar, the summary.

Libraries print start-up chatter on every run (bitsandbytes' optional-kernel notice, Lightning's
device lines and tips, deprecation warnings inside transformers and Lightning). None of it concerns
a tunelab user, so it is filtered here, before those libraries are imported. Warnings that can
matter (a real problem with the user's config or data) are left alone.
"""

from __future__ import annotations

import logging
import os
import warnings

# Loggers whose INFO chatter repeats on every run; their warnings and errors still show.
CHATTY_LOGGERS = {
    "bitsandbytes.backends.cpu.ops": logging.ERROR,  # "Failed to load CPU gemm_4bit_forward ..." (optional)
    "lightning.pytorch.utilities.rank_zero": logging.WARNING,  # GPU/TPU available, litlogger tip
    "lightning.fabric.utilities.seed": logging.WARNING,  # "Seed set to 0"
    "lightning.fabric.utilities.rank_zero": logging.WARNING,
}

# (message regex, category) of warnings that libraries raise about their own internals.
LIBRARY_WARNINGS = [
    (r".*is_gradient_checkpointing.*", FutureWarning),
    (r".*isinstance\(treespec, LeafSpec\).*", Warning),
    (r"The `srun` command is available on your system but is not used.*", Warning),
    (r"Experiment logs directory .* exists and is not empty.*", Warning),  # tunelab keeps metrics.csv
    (r".*does not have many workers which may be a bottleneck.*", Warning),  # in-memory tiny batches
]


def quiet_libraries() -> None:
    """Silence known library chatter (idempotent; call before importing the libraries)."""
    for name, level in CHATTY_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    for message, category in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights" bars of every load
