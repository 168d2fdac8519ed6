"""The user's verbs (`tunelab <verb>`): thin entry points that compose a config and call the package.

Every module here imports only the standard library, Hydra and OmegaConf at import time, so a
config error or `--help` answers before torch, Lightning or transformers load.
"""
