"""`key=value` arguments for the verbs that are not Hydra apps, typed by a dataclass."""

from __future__ import annotations

from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tunelab.core.config import ConfigError

T = TypeVar("T")


def parse_arguments(verb: str, schema: type[T], argv: list[str]) -> T:
    """`argv` (`key=value` items, Hydra's override syntax) checked against the dataclass `schema`.

    An unknown key, a value of the wrong type or a missing required key raises ConfigError naming it.
    """
    try:
        given = OmegaConf.from_dotlist(list(argv))
        merged = OmegaConf.merge(OmegaConf.structured(schema), given)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(f"tunelab {verb}: missing {', '.join(f'{k}=...' for k in missing)}")
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"tunelab {verb}: argument {key}: {str(err).splitlines()[0]}") from None


def as_dict(node: Any) -> dict[str, Any]:
    """A parsed arguments object as a plain dict (for printing what ran)."""
    return dict(OmegaConf.to_container(OmegaConf.structured(node)))
