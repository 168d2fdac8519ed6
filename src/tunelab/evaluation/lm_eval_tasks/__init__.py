"""lm-eval task YAMLs of the tiny world and the offline datasets they name (package data)."""
