"""Looking for a secret in what the engine wrote: digits typed as a password must not appear on
their own, but the same six digits inside a longer run (a float timestamp such as
1.79645202...64444447e+09, a digest) are no leak."""

from __future__ import annotations

import re


def holds(text: str, secret: str) -> bool:
    """``secret`` stands on its own in ``text``: not inside a longer run of digits."""
    return re.search(rf"(?<![0-9.]){re.escape(secret)}(?![0-9])", text) is not None
