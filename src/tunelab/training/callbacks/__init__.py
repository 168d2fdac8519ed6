"""training.callbacks: see docs/architecture.md."""
