"""Sealing recordings at rest: AES-256-GCM in 64 KiB chunks, with the site key.

A sealed file is ``MAGIC``, the key's id (8 bytes of its SHA-256: a file sealed with another key
is named as such, not reported as tampered), a 7-byte random prefix, then the chunks. Chunk ``i``
is sealed with the nonce ``prefix | i (4 bytes) | last (1 byte)`` and the header plus the
recording's ``label`` (its path) as associated data: a chunk moved, dropped, cut off at the end,
or a file swapped for another recording's fails to open. Chunks keep memory flat for an hour's
call and let playback stream. The cipher comes from ``cryptography`` (OpenSSL); only the framing
is ours, because no maintained library here offers a streaming AEAD file format (age and
Tink's streaming AEAD are not in Debian's Python).

Blocking (file I/O, crypto): call these from a worker thread.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import secrets
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callcenter.errors import RecordingError

__all__ = ["key_id", "load_or_create_key", "open_sealed", "seal_file"]

log = logging.getLogger(__name__)

MAGIC = b"CCREC1\n"
CHUNK = 64 * 1024
TAG = 16
PREFIX = 7
HEADER = len(MAGIC) + 8 + PREFIX


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:8]


def load_or_create_key(path: Path, *, create: bool = True) -> bytes:
    """The site key from ``path`` (base64 of 32 bytes); made there (mode 0600) if missing and
    ``create``, else ``RecordingError``."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if not create:
            raise RecordingError(f"the recordings key {path} is missing: restore it from its"
                                 " backup (a new key would open none of the sealed"
                                 " recordings)") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: that one is the key
            return load_or_create_key(path, create=False)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        log.warning("recordings: made a new site key in %s; BACK IT UP, without it no sealed"
                    " recording can be played", path)
        text = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise RecordingError(f"cannot read the recordings key {path}: {exc}") from exc
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise RecordingError(f"{path}: not a recordings key (base64 of 32 bytes)")
    return key


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def seal_file(src: Path, dst: Path, key: bytes, label: str) -> tuple[str, int]:
    """Seal ``src`` into ``dst`` (written whole, then renamed: never half a file); return the
    plain recording's SHA-256 (hex) and size. ``src`` is left for the caller to remove."""
    aead = AESGCM(key)
    header = MAGIC + key_id(key) + secrets.token_bytes(PREFIX)
    aad = header + label.encode()
    digest, size = hashlib.sha256(), 0
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        with src.open("rb") as plain, tmp.open("wb") as out:
            # the size it has now: a file still being written (a recording whose end was
            # never seen) is sealed as it is, in whole chunks, never a short one in between
            left = os.fstat(plain.fileno()).st_size

            def take() -> bytes:
                nonlocal left
                block = _read_exactly(plain, min(CHUNK, left))
                left -= len(block)
                return block

            out.write(header)
            chunk, index = take(), 0
            while True:
                following = take() if chunk and left > 0 else b""
                last = not following
                digest.update(chunk)
                size += len(chunk)
                out.write(aead.encrypt(_nonce(header[-PREFIX:], index, last), chunk, aad))
                if last:
                    break
                chunk, index = following, index + 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise RecordingError(f"cannot seal {src}: {exc}") from exc
    return digest.hexdigest(), size


def _read_exactly(f: BinaryIO, n: int) -> bytes:
    """``n`` bytes (fewer only at the end of the file)."""
    parts, got = [], 0
    while got < n:
        block = f.read(n - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def open_sealed(path: Path, key: bytes, label: str, first: int = 0,
                count: int | None = None) -> Iterator[bytes]:
    """The plain recording, chunk by chunk (``count`` chunks from chunk ``first``, or all):
    ``RecordingError`` if it is not whole and ours. The last chunk is known from the file's
    size, so a file cut at a chunk boundary fails too (its new last chunk was not sealed as
    the last)."""
    aead = AESGCM(key)
    try:
        with path.open("rb") as sealed:
            header = sealed.read(HEADER)
            if len(header) != HEADER or not header.startswith(MAGIC):
                raise RecordingError(f"{path.name}: not a sealed recording")
            if header[len(MAGIC):len(MAGIC) + 8] != key_id(key):
                raise RecordingError(f"{path.name}: sealed with another site key")
            aad, prefix = header + label.encode(), header[-PREFIX:]
            body = os.fstat(sealed.fileno()).st_size - HEADER
            if body < TAG:
                raise RecordingError(f"{path.name}: cut short (no chunk)")
            total = -(-body // (CHUNK + TAG))
            if first >= total:
                raise RecordingError(f"{path.name}: no chunk {first} (it has {total})")
            end = total if count is None else min(total, first + count)
            sealed.seek(HEADER + first * (CHUNK + TAG))
            for index in range(first, end):
                block = sealed.read(CHUNK + TAG)
                try:
                    yield aead.decrypt(_nonce(prefix, index, index == total - 1), block, aad)
                except InvalidTag:
                    raise RecordingError(f"{path.name}: altered, cut or not this recording's"
                                         f" (chunk {index})") from None
    except OSError as exc:
        raise RecordingError(f"cannot read {path.name}: {exc}") from exc
