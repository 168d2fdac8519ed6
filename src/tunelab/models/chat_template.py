"""Chat-template overrides: Jinja text, or the path of a file holding it."""

from __future__ import annotations

from pathlib import Path

import jinja2

from tunelab.core.config import ConfigError


def load_chat_template(template: str | None, key: str = "model.chat_template") -> str | None:
    """The template text of an override (`key` names the config key in errors); checked to parse.

    Text with Jinja markup (`{{` or `{%`) is the template itself; anything else is a file name.
    """
    if template is None or template == "":
        return None
    if "{{" not in template and "{%" not in template:  # not Jinja text: a file name
        path = Path(template).expanduser()
        if not path.is_file():
            raise ConfigError(f"{key}={template!r}: no such template file (and not Jinja text)")
        template = path.read_text()
    try:
        jinja2.Environment().parse(template)
    except jinja2.TemplateSyntaxError as err:
        raise ConfigError(f"{key}: line {err.lineno}: {err.message}") from None
    return template
