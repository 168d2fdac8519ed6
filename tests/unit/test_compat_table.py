"""docs/adapters.md's compatibility table: generated from the configs and rules, never stale."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from tests.conftest import ROOT
from tunelab.scaling.compat_table import (
    BEGIN,
    END,
    generated_section,
    render,
    replace_section,
    rule_cell,
    with_changes,
)


def test_docs_table_is_what_the_configs_and_rules_say():
    doc = (ROOT / "docs" / "adapters.md").read_text()
    assert generated_section(ROOT / "conf") in doc, "stale: run python scripts/adapter_compat_table.py"


def test_render_numbers_each_distinct_reason_once():
    text = render([("a", [None, "x", None, "x"]), ("b", ["y", None, "x", None])])
    lines = text.splitlines()
    assert lines[2] == "| `a` | works | refused [1] | works | refused [1] |"
    assert lines[3] == "| `b` | refused [2] | works | refused [1] | works |"
    assert [line.strip() for line in lines[5:]] == ["[1] x", "[2] y"]


def test_replace_section_keeps_the_hand_written_text():
    doc = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert replace_section(doc, f"{BEGIN}\nnew\n{END}") == f"intro\n{BEGIN}\nnew\n{END}\noutro\n"


def test_an_adapter_that_changes_the_optimizer_keeps_it_in_every_column():
    """GaLore selects its optimizer: the FSDP2 cell must see it (and refuse), not plain AdamW."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        default = compose(config_name="train")
        fsdp2 = compose(config_name="train", overrides=["strategy=fsdp2", "trainer.gradient_clip_val=null"])
        for name in ("galore", "galore8bit"):
            galore = compose(config_name="train", overrides=[f"adapter={name}"])
            assert "GaLore needs whole weight matrices" in rule_cell(with_changes(fsdp2, galore, default))
        full = compose(config_name="train", overrides=["adapter=full"])
        assert rule_cell(with_changes(fsdp2, full, default)) is None
