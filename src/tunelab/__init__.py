"""tunelab: a Hydra-configured research harness for LLM fine-tuning."""

from tunelab.core.config import register_resolvers
from tunelab.world import register_world_resolver

__version__ = "0.1.0"

register_resolvers()
register_world_resolver()
