"""Looking for a secret in what the engine wrote. Digits typed as a password must appear
nowhere, also joined to other digits (an account number then the password); but the same six
digits inside a float (a timestamp such as 1.79645202...64444447e+09) are no leak: floats are
taken out before the search."""

from __future__ import annotations

import re

_FLOAT = re.compile(r"[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?")


def holds(text: str, secret: str) -> bool:
    """``secret`` is in ``text``, floats left out."""
    return secret in _FLOAT.sub(" ", text)
