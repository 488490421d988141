"""Salted password hashes for the sandbox back office: scrypt, constant-time checks, off the loop.

Stored form: ``scrypt$<salt, base64>$<hash, base64>`` with n=2**14, r=8, p=1 and a 32-byte key.
One hash costs about 0.1 s of CPU, so the ``*_async`` wrappers run it in a worker thread: the
event loop (and every other call on it) never waits for a password check.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os

from pydantic import SecretStr

from callcenter.errors import BrokerError

SCHEME = "scrypt"
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
# 128 * n * r bytes are needed; leave headroom over OpenSSL's default limit.
_MAXMEM = 64 * 1024 * 1024


def _plain(password: str | SecretStr) -> bytes:
    text = password.get_secret_value() if isinstance(password, SecretStr) else password
    return text.encode("utf-8")


def _derive(password: bytes, salt: bytes) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM,
                          dklen=_KEY_BYTES)


def hash_password(password: str | SecretStr) -> str:
    """A fresh salted hash of ``password`` (blocking: prefer ``hash_password_async``)."""
    salt = os.urandom(_SALT_BYTES)
    key = _derive(_plain(password), salt)
    return "$".join((SCHEME, base64.b64encode(salt).decode(), base64.b64encode(key).decode()))


def verify_password(password: str | SecretStr, encoded: str) -> bool:
    """Whether ``password`` matches the stored hash; the comparison is constant-time."""
    try:
        scheme, salt_b64, key_b64 = encoded.split("$")
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(key_b64, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise BrokerError("a stored password hash is malformed") from exc
    if scheme != SCHEME or len(expected) != _KEY_BYTES:
        raise BrokerError("a stored password hash has an unknown scheme")
    return hmac.compare_digest(_derive(_plain(password), salt), expected)


async def hash_password_async(password: str | SecretStr) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password: str | SecretStr, encoded: str) -> bool:
    return await asyncio.to_thread(verify_password, password, encoded)
