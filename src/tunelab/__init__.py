"""tunelab: a Hydra-configured research harness for LLM fine-tuning."""

from tunelab.core.config import register_resolvers

__version__ = "0.1.0"

register_resolvers()
