"""Regenerate the compatibility table in docs/adapters.md from the configs and compat rules.

    python scripts/adapter_compat_table.py [--check]

--check: exit 1 if docs/adapters.md differs from what the configs and rules say (CI's use).
"""

from __future__ import annotations

import argparse
import sys

from tunelab.core.config import project_root
from tunelab.scaling.compat_table import generated_section, replace_section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/adapters.md is stale")
    args = parser.parse_args(argv)
    doc = project_root() / "docs" / "adapters.md"
    current = doc.read_text() if doc.exists() else "# Adapters\n"
    updated = replace_section(current, generated_section())
    if args.check:
        if updated != current:
            print(f"{doc} is stale: run python scripts/adapter_compat_table.py", file=sys.stderr)
            return 1
        return 0
    doc.write_text(updated)
    print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
