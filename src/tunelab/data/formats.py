"""Record formats for SFT data, each turned into OpenAI-style chat messages `[{role, content}]`.

One function per format, in a registry (`FORMATS`); `data.format=auto` picks the first format whose
key field a record has. Every error names the record and the field, and says what was expected.
"""

from __future__ import annotations

from collections.abc import Callable

from tunelab.core.config import DataError

Messages = list[dict[str, str]]
ROLES = ("system", "user", "assistant")
# ShareGPT speaker names -> chat roles (the names seen in ShareGPT, Vicuna and SlimOrca dumps).
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
}


def _string(record: dict, key: str, where: str, optional: bool = False) -> str:
    """`record[key]` as a string; a missing optional field is ""."""
    if key not in record:
        if optional:
            return ""
        raise DataError(f"{where}: missing field {key!r} (expected a string)")
    value = record[key]
    if optional and value is None:  # parquet/csv columns hold null where a row has no value
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r}: expected a string, got {type(value).__name__}")
    return value


def _turns(record: dict, key: str, where: str) -> list:
    value = record.get(key)
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: field {key!r}: expected a non-empty list of turns, got {value!r:.60}")
    return value


def _check_turns(messages: Messages, field: str, where: str) -> None:
    """Roles in the order every chat template accepts: an optional system turn first, then user and
    assistant alternating from a user turn; every assistant answer non-blank."""
    expected = "user"
    for i, m in enumerate(messages):
        role = m["role"]
        if role == "system" and i == 0:
            continue
        if role != expected:
            want = "'system' only as the first turn" if role == "system" else f"a {expected!r} turn"
            raise DataError(
                f"{where}: field '{field}[{i}]': role {role!r} out of order (expected {want}; "
                "user and assistant turns alternate, starting with user)"
            )
        if role == "assistant" and not m["content"].strip():
            raise DataError(f"{where}: field '{field}[{i}]': blank assistant answer (expected text to learn)")
        expected = "assistant" if role == "user" else "user"


def _answer(record: dict, key: str, where: str) -> str:
    """The assistant answer `record[key]`: a non-blank string."""
    value = _string(record, key, where)
    if not value.strip():
        raise DataError(f"{where}: field {key!r}: blank answer (expected text to learn)")
    return value


def _with_system(messages: Messages, record: dict, key: str, where: str) -> Messages:
    """Prepend the record's top-level system prompt (`key`), if any and if the chat has none."""
    system = _string(record, key, where, optional=True)
    if system and messages[0]["role"] != "system":
        return [{"role": "system", "content": system}, *messages]
    return messages


def openai_messages(record: dict, where: str) -> Messages:
    """`{"messages": [{"role", "content"}, ...]}` (OpenAI chat format), optional `system`."""
    messages = []
    for i, m in enumerate(_turns(record, "messages", where)):
        field = f"messages[{i}]"
        if not isinstance(m, dict):
            raise DataError(f"{where}: field '{field}': expected an object with 'role' and 'content'")
        if m.get("role") not in ROLES:
            raise DataError(f"{where}: field '{field}.role': expected one of {ROLES}, got {m.get('role')!r}")
        if not isinstance(m.get("content"), str):
            got = type(m.get("content")).__name__
            raise DataError(f"{where}: field '{field}.content': expected a string, got {got}")
        messages.append({"role": m["role"], "content": m["content"]})
    _check_turns(messages, "messages", where)
    return _with_system(messages, record, "system", where)


def sharegpt_messages(record: dict, where: str) -> Messages:
    """`{"conversations": [{"from": "human"|"gpt"|"system", "value"}, ...]}`, optional `system`."""
    messages = []
    for i, turn in enumerate(_turns(record, "conversations", where)):
        field = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise DataError(f"{where}: field '{field}': expected an object with 'from' and 'value'")
        if turn.get("from") not in SHAREGPT_ROLES:
            expected = tuple(SHAREGPT_ROLES)
            raise DataError(
                f"{where}: field '{field}.from': expected one of {expected}, got {turn.get('from')!r}"
            )
        if not isinstance(turn.get("value"), str):
            got = type(turn.get("value")).__name__
            raise DataError(f"{where}: field '{field}.value': expected a string, got {got}")
        messages.append({"role": SHAREGPT_ROLES[turn["from"]], "content": turn["value"]})
    _check_turns(messages, "conversations", where)
    return _with_system(messages, record, "system", where)


def alpaca_messages(record: dict, where: str) -> Messages:
    """`{"instruction", "input" (optional), "output"}` (Stanford Alpaca), optional `system`.

    A non-empty input follows the instruction after a blank line, as in Alpaca's own prompt.
    """
    instruction = _string(record, "instruction", where)
    extra = _string(record, "input", where, optional=True)
    output = _answer(record, "output", where)
    user = f"{instruction}\n\n{extra}" if extra else instruction
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return _with_system(messages, record, "system", where)


def orca_messages(record: dict, where: str) -> Messages:
    """`{"system_prompt", "question", "response"}` (OpenOrca): the system prompt asks for the
    explanation trace that the response holds; both pass through the chat template."""
    messages = [
        {"role": "user", "content": _string(record, "question", where)},
        {"role": "assistant", "content": _answer(record, "response", where)},
    ]
    return _with_system(messages, record, "system_prompt", where)


def prompt_completion_messages(record: dict, where: str) -> Messages:
    """`{"prompt", "completion"}` as a two-turn chat, optional `system`."""
    messages = [
        {"role": "user", "content": _string(record, "prompt", where)},
        {"role": "assistant", "content": _answer(record, "completion", where)},
    ]
    return _with_system(messages, record, "system", where)


# name -> (the field that identifies the format in `auto` mode, converter)
FORMATS: dict[str, tuple[str, Callable[[dict, str], Messages]]] = {
    "openai": ("messages", openai_messages),
    "sharegpt": ("conversations", sharegpt_messages),
    "alpaca": ("instruction", alpaca_messages),
    "orca": ("question", orca_messages),
    "prompt_completion": ("prompt", prompt_completion_messages),
}


def check_format(name: str) -> None:
    """Raise DataError unless `name` is `auto` or a registered format."""
    if name != "auto" and name not in FORMATS:
        raise DataError(f"data.format={name!r}: expected 'auto' or one of {sorted(FORMATS)}")


def detect(record: dict, where: str) -> str:
    """The format of a record: the first one whose identifying field it has."""
    for name, (key, _) in FORMATS.items():
        if key in record:
            return name
    keys = ", ".join(f"'{key}' ({name})" for name, (key, _) in FORMATS.items())
    raise DataError(f"{where}: unknown record format, expected a field {keys}; got fields {sorted(record)}")


def to_messages(record: object, where: str, fmt: str = "auto") -> Messages:
    """A record of format `fmt` (or any, for `auto`) as validated chat messages with an assistant turn."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object (a record), got {type(record).__name__}")
    name = detect(record, where) if fmt == "auto" else fmt
    messages = FORMATS[name][1](record, where)
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: no assistant turn to learn from (expected at least one)")
    return messages
