"""Sealing recordings at rest: AES-256-GCM in 64 KiB chunks, with the site key.

A sealed file is ``MAGIC``, the key's id (8 bytes of its SHA-256: a file sealed with another key
is named as such, not reported as tampered), a 7-byte random prefix, then the chunks. Chunk ``i``
is sealed with the nonce ``prefix | i (4 bytes) | last (1 byte)`` and the header plus the
recording's ``label`` (its path) as associated data: a chunk moved, dropped, cut off at the end,
or a file swapped for another recording's fails to open. Chunks keep memory flat for an hour's
call and let playback stream. The cipher comes from ``cryptography`` (OpenSSL); only the framing
is ours, because no maintained library here offers a streaming AEAD file format (age and
Tink's streaming AEAD are not in Debian's Python).

Keys rotate (``rotate_key``): the current key seals; retired keys, kept in
``<key file's stem>-retired/<key id>.key``, only open what they sealed (a ``Keyring`` picks the
key by the id in each file's header), until ``reseal`` has sealed those files again under the
current key, each checked against the digest taken when it was first sealed.

Blocking (file I/O, crypto): call these from a worker thread.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import logging
import os
import secrets
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callcenter.errors import RecordingError
from callcenter.files import fsync_dir

__all__ = ["Keyring", "key_id", "load_keyring", "load_or_create_key", "open_sealed", "reseal",
           "retired_dir", "rotate_key", "seal_file", "sealed_with"]

log = logging.getLogger(__name__)

MAGIC = b"CCREC1\n"
CHUNK = 64 * 1024
TAG = 16
PREFIX = 7
HEADER = len(MAGIC) + 8 + PREFIX


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:8]


@dataclass(frozen=True)
class Keyring:
    """The current key (it seals) and the retired ones by key id (they only open)."""

    current: bytes
    retired: Mapping[bytes, bytes] = field(default_factory=dict)

    def key_for(self, kid: bytes) -> bytes | None:
        if kid == key_id(self.current):
            return self.current
        return self.retired.get(kid)


def retired_dir(key_file: Path) -> Path:
    """Where the retired keys of ``key_file`` are kept, one file per key id."""
    return key_file.with_name(f"{key_file.stem}-retired")


def _read_key(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
        key = base64.b64decode(text, validate=True)
    except (ValueError, UnicodeDecodeError):
        key = b""
    if len(key) != 32:
        raise RecordingError(f"{path}: not a recordings key (base64 of 32 bytes)")
    return key


def _own_like(fd: int, like: os.stat_result | None) -> None:
    """Give the file ``fd`` the owner (when this process may) and mode of ``like``."""
    if like is None:
        return
    if os.geteuid() == 0 and (like.st_uid, like.st_gid) != (os.getuid(), os.getgid()):
        os.fchown(fd, like.st_uid, like.st_gid)
    os.fchmod(fd, like.st_mode & 0o777)


def remove_leftovers(dst: Path) -> None:
    """Remove the temporary files a crash left beside ``dst`` (a half-written seal or key):
    only while writers of sealed files are one at a time (the recordings lock)."""
    for stale in dst.parent.glob(f".{glob.escape(dst.name)}.*.tmp"):
        stale.unlink(missing_ok=True)


def _unique_tmp(dst: Path, mode: int) -> tuple[Path, int]:
    """A new temporary file beside ``dst`` that no other writer shares (created exclusively)."""
    while True:
        tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(6)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue


@contextlib.contextmanager
def _new_file(dst: Path, mode: int) -> Iterator[int]:
    """A temporary file of its own beside ``dst`` (its descriptor): put in place of ``dst``, the
    folder synced, when the block ends without an error; removed if it fails."""
    remove_leftovers(dst)
    tmp, fd = _unique_tmp(dst, mode)
    try:
        try:
            yield fd
        finally:
            os.close(fd)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(dst.parent)


def _write_key(path: Path, key: bytes, like: os.stat_result | None = None) -> None:
    """Write ``key`` to ``path`` whole (mode 0600, the owner of ``like``, on disk before it is
    renamed in place)."""
    with _new_file(path, 0o600) as fd, os.fdopen(fd, "w", encoding="ascii",
                                                 closefd=False) as out:
        _own_like(out.fileno(), like)
        os.fchmod(out.fileno(), 0o600)
        out.write(base64.b64encode(key).decode() + "\n")
        out.flush()
        os.fsync(out.fileno())


def load_keyring(path: Path, *, create: bool = True) -> Keyring:
    """The current key (``load_or_create_key``) and the retired ones beside it."""
    current = load_or_create_key(path, create=create)
    retired: dict[bytes, bytes] = {}
    folder = retired_dir(path)
    try:
        # scandir, not glob: an unreadable folder is an error, never "no retired keys"
        try:
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if e.name.endswith(".key"))
        except FileNotFoundError:
            names = []
        for file in (folder / name for name in names):
            key = _read_key(file)
            if file.stem != key_id(key).hex():
                raise RecordingError(f"{file}: holds key {key_id(key).hex()}, not the key its"
                                     " name says")
            retired[key_id(key)] = key
    except OSError as exc:
        raise RecordingError(f"cannot read the retired recordings keys in {folder}: {exc}") \
            from exc
    return Keyring(current, retired)


def rotate_key(path: Path) -> tuple[str, str]:
    """Retire the current key (kept in ``retired_dir``, written there first) and make a new
    one; (retired key id, new key id), in hex. A crash in between leaves the old key both
    current and retired: running it again finishes the rotation."""
    old = load_or_create_key(path, create=False)
    like = path.stat()   # the engine's user must go on reading them (a rotation run by root)
    folder = retired_dir(path)
    folder.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(folder, like.st_uid, like.st_gid)
    kept = folder / f"{key_id(old).hex()}.key"
    if kept.exists() and _read_key(kept) != old:
        raise RecordingError(f"{kept}: holds another key than the current one")
    _write_key(kept, old, like)
    new = secrets.token_bytes(32)
    _write_key(path, new, like)
    log.warning("recordings: key %s retired to %s, new key %s in %s; BACK UP the new key",
                key_id(old).hex(), folder, key_id(new).hex(), path)
    return key_id(old).hex(), key_id(new).hex()


def load_or_create_key(path: Path, *, create: bool = True) -> bytes:
    """The site key from ``path`` (base64 of 32 bytes); made there (mode 0600) if missing and
    ``create``, else ``RecordingError``."""
    try:
        path.stat()
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
    except OSError as exc:
        raise RecordingError(f"cannot read the recordings key {path}: {exc}") from exc
    try:
        return _read_key(path)
    except OSError as exc:
        raise RecordingError(f"cannot read the recordings key {path}: {exc}") from exc


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def seal_file(src: Path, dst: Path, key: bytes, label: str) -> tuple[str, int]:
    """Seal ``src`` into ``dst`` (written whole, then renamed: never half a file); return the
    plain recording's SHA-256 (hex) and size. ``src`` is left for the caller to remove."""
    try:
        with src.open("rb") as plain:
            # the size it has now: a file still being written (a recording whose end was
            # never seen) is sealed as it is, in whole chunks, never a short one in between
            left = os.fstat(plain.fileno()).st_size

            def blocks() -> Iterator[bytes]:
                nonlocal left
                while left > 0:
                    block = _read_exactly(plain, min(CHUNK, left))
                    if not block:
                        return
                    left -= len(block)
                    yield block

            return _write_sealed(blocks(), dst, key, label)
    except OSError as exc:
        raise RecordingError(f"cannot seal {src}: {exc}") from exc


def _write_sealed(chunks: Iterable[bytes], dst: Path, key: bytes, label: str,
                  expect_sha256: str | None = None, like: os.stat_result | None = None
                  ) -> tuple[str, int]:
    """Seal ``chunks`` (``CHUNK`` bytes each but the last) into ``dst``, written whole to a
    temporary file of its own, then renamed over ``dst``; the plain content's SHA-256 (hex) and
    size. With ``expect_sha256``, the written file is opened again and renamed only if what it
    holds has that digest; with ``like``, it gets that file's owner and mode."""
    aead = AESGCM(key)
    header = MAGIC + key_id(key) + secrets.token_bytes(PREFIX)
    aad = header + label.encode()
    digest, size = hashlib.sha256(), 0
    # the umask applies, as to any file opened to write
    with _new_file(dst, 0o666) as fd:
        with os.fdopen(fd, "wb", closefd=False) as out:
            _own_like(out.fileno(), like)
            out.write(header)
            it = iter(chunks)
            chunk, index = next(it, b""), 0
            while True:
                following = next(it, None) if chunk else None
                last = following is None
                if not last and len(chunk) != CHUNK:
                    raise RecordingError(f"cannot seal {dst.name}: a short chunk before the end")
                digest.update(chunk)
                size += len(chunk)
                out.write(aead.encrypt(_nonce(header[-PREFIX:], index, last), chunk, aad))
                if following is None:
                    break
                chunk, index = following, index + 1
            out.flush()
            os.fsync(out.fileno())
        if expect_sha256 is not None and (digest.hexdigest() != expect_sha256
                                          or _plain_digest(fd, key, label) != expect_sha256):
            raise RecordingError(f"{dst.name}: its content does not match the digest taken when"
                                 " it was sealed; left as it was")
    return digest.hexdigest(), size


def _plain_digest(fd: int, key: bytes, label: str) -> str:
    """The SHA-256 of what the sealed file open as ``fd`` holds, as read back."""
    written = hashlib.sha256()
    try:
        for block in open_sealed(Path(f"/proc/self/fd/{fd}"), key, label):
            written.update(block)
    except RecordingError as exc:
        raise RecordingError(f"the new seal does not read back whole: {exc}") from None
    return written.hexdigest()


def sealed_with(path: Path) -> bytes:
    """The id of the key ``path`` was sealed with (``RecordingError`` if it is not sealed)."""
    try:
        with path.open("rb") as sealed:
            header = sealed.read(HEADER)
    except OSError as exc:
        raise RecordingError(f"cannot read {path.name}: {exc}") from exc
    if len(header) != HEADER or not header.startswith(MAGIC):
        raise RecordingError(f"{path.name}: not a sealed recording")
    return header[len(MAGIC):len(MAGIC) + 8]


def reseal(path: Path, ring: Keyring, label: str, sha256: str) -> bool:
    """Seal ``path`` again under the current key if a retired one sealed it (False: it is
    already under the current key). The new file replaces the old one only once its content
    has been checked against ``sha256``, the digest taken when it was first sealed."""
    if sealed_with(path) == key_id(ring.current):
        return False
    try:
        _write_sealed(open_sealed(path, ring, label), path, ring.current, label, sha256,
                      like=path.stat())
    except OSError as exc:
        raise RecordingError(f"cannot seal {path.name} again: {exc}") from exc
    return True


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


def open_sealed(path: Path, key: bytes | Keyring, label: str, first: int = 0,
                count: int | None = None) -> Iterator[bytes]:
    """The plain recording, chunk by chunk (``count`` chunks from chunk ``first``, or all):
    ``RecordingError`` if it is not whole and ours. The last chunk is known from the file's
    size, so a file cut at a chunk boundary fails too (its new last chunk was not sealed as
    the last). With a ``Keyring``, the key named in the file's header opens it."""
    ring = key if isinstance(key, Keyring) else Keyring(key)
    try:
        with path.open("rb") as sealed:
            header = sealed.read(HEADER)
            if len(header) != HEADER or not header.startswith(MAGIC):
                raise RecordingError(f"{path.name}: not a sealed recording")
            kid = header[len(MAGIC):len(MAGIC) + 8]
            use = ring.key_for(kid)
            if use is None:
                raise RecordingError(f"{path.name}: sealed with another site key (key id"
                                     f" {kid.hex()}: a retired key must be kept until"
                                     " `callcenter recordings rekey` has run)")
            aead = AESGCM(use)
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
