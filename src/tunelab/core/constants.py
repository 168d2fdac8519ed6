"""Constants shared by data and objectives (kept here so neither imports the other)."""

IGNORE_INDEX = -100  # label of a position the loss skips (torch's cross_entropy default)
