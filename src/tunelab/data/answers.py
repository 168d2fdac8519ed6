"""Answer extraction and normalisation for generation evals on the user's own data.

A real chat model answers "What is 13+54?" with "13 + 54 = 67." -- right, but not the string
"67". `match` says how a prediction is compared with the reference answer:

- `exact`: the whole (normalised) prediction equals the (normalised) reference;
- `number`: the last number in the prediction equals the last number in the reference;
- `regex`: `pattern`'s first group (or whole match) in the prediction equals the same extraction
  from the reference (the whole reference when the pattern does not match it), e.g.
  `pattern: "#### (.+)"` for GSM8K-style answers;
- `contains`: the normalised reference occurs in the normalised prediction.

Normalisation (`normalize: true`) lower-cases, collapses whitespace and strips surrounding
punctuation and quotes.
"""

from __future__ import annotations

import re
import string

from tunelab.core.config import ConfigError

MATCHES = ("exact", "number", "regex", "contains")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
EDGE = string.punctuation + string.whitespace + "“”‘’"


def normalize(text: str) -> str:
    """Lower-cased, whitespace collapsed, surrounding punctuation stripped."""
    return " ".join(text.lower().split()).strip(EDGE)


def last_number(text: str) -> float | None:
    """The last number written in `text` (thousands commas allowed), or None."""
    found = NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


class AnswerMatcher:
    """Compares predictions with reference answers in one of the `MATCHES` modes."""

    def __init__(self, match: str = "exact", pattern: str | None = None, normalize: bool = True) -> None:
        if match not in MATCHES:
            raise ConfigError(f"eval match={match!r}: expected one of {list(MATCHES)}")
        if match == "regex":
            if not pattern:
                raise ConfigError("eval match=regex needs a pattern (e.g. pattern: '#### (.+)')")
            try:
                self.regex = re.compile(pattern)
            except re.error as err:
                raise ConfigError(f"eval pattern={pattern!r}: {err}") from None
        self.match = match
        self.normalize = normalize

    def _norm(self, text: str) -> str:
        return normalize(text) if self.normalize else text.strip()

    def extract(self, text: str) -> str | None:
        """The part of `text` that is compared (None: nothing extractable, a miss)."""
        if self.match == "number":
            value = last_number(text)
            return None if value is None else f"{value:g}"
        if self.match == "regex":
            found = self.regex.search(text)
            if found is None:
                return None
            return self._norm(found.group(1) if found.groups() else found.group(0))
        return self._norm(text)

    def reference(self, text: str) -> str | None:
        """The reference's comparable part (regex: the whole reference when the pattern misses)."""
        if self.match == "regex" and self.regex.search(text) is None:
            return self._norm(text)
        return self.extract(text)

    def __call__(self, prediction: str, reference: str) -> bool:
        ref = self.reference(reference)
        pred = self.extract(prediction)
        if ref is None or pred is None:
            return False
        return ref in pred if self.match == "contains" else pred == ref
