"""What of an account, a number or an address the console may see: masked values and file names
(the page never gets a whole account, phone number or a path on the engine's host)."""

from __future__ import annotations


def mask(value: str, keep: int = 4) -> str:
    return "" if not value else ("*" * max(0, len(value) - keep)) + value[-keep:]


def mask_address(channel: str, to: str) -> str:
    """An address as the console sees it: an e-mail's first letter and domain, a number's last
    four digits."""
    if channel == "email" and "@" in to:
        local, _, domain = to.rpartition("@")
        return f"{local[:1]}***@{domain}"
    return mask(to)


def file_name(path: str) -> str:
    """The last part of a path on the engine's host (the page gets no more of it)."""
    return path.replace("\\", "/").rsplit("/", 1)[-1]
