"""scaling: see docs/architecture.md."""
