"""Pruning as a stage after training: unstructured magnitude, structured (heads, neurons, layers),
and re-masking for recovery fine-tuning. See docs/beyond.md."""
