"""Rotating the recordings key (``vault.rotate_key``, ``vault.reseal``, ``recordings/rekey.py``)
and ``callcenter recordings rotate-key`` / ``rekey`` as an operator runs them: what a retired key
sealed still opens, a re-seal is checked against the digest and swapped whole, a crash halfway
loses nothing, and nothing runs beside the engine."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from callcenter.errors import RecordingError
from callcenter.recordings.keeper import RecordingKeeper
from callcenter.recordings.lock import holding
from callcenter.recordings.vault import (
    CHUNK,
    Keyring,
    key_id,
    load_keyring,
    load_or_create_key,
    open_sealed,
    reseal,
    retired_dir,
    rotate_key,
    seal_file,
    sealed_with,
)
from callcenter.recordings.vault import _unique_tmp as _unique_tmp_open
from callcenter.store.db import open_db

from .admin_world import recordings_cli, sealed_order_recording_in

LABEL = "/x/a.wav"


def sealed(tmp_path: Path, key: bytes, size: int = 3 * CHUNK + 100) -> tuple[Path, bytes, str]:
    plain = os.urandom(size)
    (tmp_path / "a.wav").write_bytes(plain)
    digest, _ = seal_file(tmp_path / "a.wav", tmp_path / "a.sealed", key, LABEL)
    return tmp_path / "a.sealed", plain, digest


def test_a_rotated_key_is_retired_beside_the_new_one_and_still_opens_what_it_sealed(
        tmp_path: Path) -> None:
    key_file = tmp_path / "state" / "recordings.key"
    old = load_or_create_key(key_file)
    path, plain, _ = sealed(tmp_path, old)
    retired, new = rotate_key(key_file)
    assert retired == key_id(old).hex() and new != retired
    kept = retired_dir(key_file) / f"{retired}.key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(retired_dir(key_file).stat().st_mode) == 0o700
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    ring = load_keyring(key_file, create=False)
    assert key_id(ring.current).hex() == new and ring.retired == {key_id(old): old}
    assert b"".join(open_sealed(path, ring, LABEL)) == plain
    with pytest.raises(RecordingError, match=f"another site key \\(key id {retired}"):
        b"".join(open_sealed(path, ring.current, LABEL))


def test_a_reseal_is_checked_against_the_digest_and_swapped_whole(tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    path, plain, digest = sealed(tmp_path, old)
    ring = Keyring(new, {key_id(old): old})
    before = path.read_bytes()
    with pytest.raises(RecordingError, match="does not match the digest"):
        reseal(path, ring, LABEL, hashlib.sha256(b"something else").hexdigest())
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["a.sealed", "a.wav"]
    tampered = bytearray(before)
    tampered[-5] ^= 1
    path.write_bytes(bytes(tampered))
    with pytest.raises(RecordingError, match="altered"):
        reseal(path, ring, LABEL, digest)
    assert path.read_bytes() == bytes(tampered)   # left as it was, for an inquiry
    path.write_bytes(before)
    assert reseal(path, ring, LABEL, digest) is True
    assert sealed_with(path) == key_id(new)
    assert b"".join(open_sealed(path, new, LABEL)) == plain
    assert reseal(path, ring, LABEL, digest) is False   # already under the current key
    empty = tmp_path / "e.wav"
    empty.write_bytes(b"")
    d, _ = seal_file(empty, tmp_path / "e.sealed", old, "/x/e.wav")
    assert reseal(tmp_path / "e.sealed", ring, "/x/e.wav", d)
    assert b"".join(open_sealed(tmp_path / "e.sealed", new, "/x/e.wav")) == b""


def test_a_rotation_cut_short_is_finished_by_running_it_again(tmp_path: Path) -> None:
    key_file = tmp_path / "recordings.key"
    old = load_or_create_key(key_file)
    folder = retired_dir(key_file)
    folder.mkdir()
    (folder / f"{key_id(old).hex()}.key").write_text(key_file.read_text())  # then a crash
    retired, _new = rotate_key(key_file)
    assert retired == key_id(old).hex() and load_keyring(key_file).retired == {key_id(old): old}
    (folder / "0011223344556677.key").write_text(key_file.read_text())
    with pytest.raises(RecordingError, match="not the key its name says"):
        load_keyring(key_file)


async def test_an_operator_rotates_the_key_and_reseals_the_recordings(tmp_path: Path) -> None:
    settings, cli = recordings_cli(tmp_path)
    state = settings.state_dir

    for verb in ("rotate-key", "rekey"):   # another state directory (say, a plain sudo)
        nothing = cli(verb)
        assert nothing.returncode == 1 and "no recordings key" in nothing.stderr
        assert "with the engine's settings" in nothing.stderr and "Traceback" not in \
            nothing.stderr
    audio, rec = await sealed_order_recording_in(settings)
    old = key_id(load_or_create_key(settings.recordings_key_file, create=False)).hex()

    (state / "engine.pid").write_text(str(os.getpid()))   # an engine runs
    for verb in ("rotate-key", "rekey"):
        refused = cli(verb)
        assert refused.returncode == 1 and "stop the engine first" in refused.stderr, verb
    (state / "engine.pid").unlink()

    rotated = cli("rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert f"recordings key {old} retired" in rotated.stdout and "BACK UP" in rotated.stdout
    out = tmp_path / "before.wav"
    assert cli("export", str(rec.id), "-o", str(out)).returncode == 0   # the retired key opens
    assert out.read_bytes() == audio

    rekeyed = cli("rekey")
    assert rekeyed.returncode == 0, rekeyed.stderr
    assert "sealed again under key" in rekeyed.stdout and ": 1; already under it: 0" in \
        rekeyed.stdout
    assert f"retired key {old}: no kept recording needs it" in rekeyed.stdout
    again = cli("rekey")
    assert ": 0; already under it: 1" in again.stdout
    (retired_dir(settings.recordings_key_file) / f"{old}.key").unlink()
    out = tmp_path / "after.wav"
    exported = cli("export", str(rec.id), "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert out.read_bytes() == audio and "Traceback" not in again.stderr


def _unique_tmp(dst: Path) -> Path:
    tmp, fd = _unique_tmp_open(dst, 0o600)
    os.close(fd)
    return tmp


def test_a_reseal_keeps_the_files_mode_and_writes_through_a_file_of_its_own(
        tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    path, _plain, digest = sealed(tmp_path, old)
    path.chmod(0o640)
    first, second = _unique_tmp(path), _unique_tmp(path)
    assert first != second   # two writers never share one
    first.unlink()
    second.unlink()
    assert reseal(path, Keyring(new, {key_id(old): old}), LABEL, digest)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


async def test_the_keeper_skips_its_rounds_while_a_rotation_holds_the_lock_and_reads_new_keys(
        tmp_path: Path) -> None:
    settings, cli = recordings_cli(tmp_path)
    await sealed_order_recording_in(settings)
    db = await open_db(settings.database)
    try:
        keeper = RecordingKeeper(settings, db)
        first = await keeper.key()
        with holding(settings.state_dir) as held:
            assert held
            assert await keeper.round() == (0, 0)
            busy = cli("rekey")
            assert busy.returncode == 1 and "holds" in busy.stderr and "try again" in busy.stderr
        assert cli("rotate-key").returncode == 0
        ring = await keeper.key()   # read again: the files changed
        assert ring.current != first.current and ring.retired == {
            key_id(first.current): first.current}
    finally:
        await db.close()


async def test_rekey_never_calls_a_key_unneeded_while_a_file_is_missing_or_a_key_is_lost(
        tmp_path: Path) -> None:
    settings, cli = recordings_cli(tmp_path)
    _audio, rec = await sealed_order_recording_in(settings)
    assert cli("rotate-key").returncode == 0
    path = settings.pbx_path(rec.stored_path)
    away = path.with_name("away")
    path.rename(away)   # storage not mounted, say
    missing = cli("rekey")
    assert missing.returncode == 1 and "no file to seal again" in missing.stderr
    assert "cannot be told" in missing.stderr and "may be removed" not in missing.stdout
    away.rename(path)
    folder = retired_dir(settings.recordings_key_file)
    (kept,) = folder.iterdir()
    kept.rename(tmp_path / "offline.key")   # the retired key lost
    lost = cli("rekey")
    assert lost.returncode == 1 and f"key {kept.stem}: sealed 1 recording(s)" in lost.stderr
    assert "restore it from its backup" in lost.stderr and "Traceback" not in lost.stderr
    (tmp_path / "offline.key").rename(kept)
    assert cli("rekey").returncode == 0


def test_an_unreadable_pid_file_is_no_engine(tmp_path: Path) -> None:
    from callcenter.ops.engine_process import engine_pid, pid_file

    pid_file(tmp_path).mkdir()   # read fails (a directory): no engine, no crash
    assert engine_pid(tmp_path) is None


def test_the_lock_is_one_holder_at_a_time_and_a_crashs_leftovers_go(tmp_path: Path) -> None:
    with holding(tmp_path) as first, holding(tmp_path) as second:
        assert first and not second
    with holding(tmp_path) as again:
        assert again   # let go with its holder
    assert os.listdir(tmp_path) == []   # no lock file to own
    key = os.urandom(32)
    path, plain, _ = sealed(tmp_path, key)
    left = tmp_path / ".a.sealed.0123456789ab.tmp"   # a seal cut short by a crash
    left.write_bytes(b"half")
    seal_file(tmp_path / "a.wav", path, key, LABEL)
    assert not left.exists() and b"".join(open_sealed(path, key, LABEL)) == plain


async def test_an_unreadable_pid_file_stops_the_commands(tmp_path: Path) -> None:
    from callcenter.errors import ConfigError
    from callcenter.recordings.rekey import engine_stopped

    settings, _cli = recordings_cli(tmp_path)
    settings.state_dir.mkdir(parents=True)
    (settings.state_dir / "engine.pid").mkdir()   # cannot be read as a pid file
    with pytest.raises(ConfigError, match="cannot tell whether the engine runs"):
        engine_stopped(settings, "rekey")
