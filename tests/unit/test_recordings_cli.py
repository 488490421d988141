"""``callcenter recordings`` as an operator runs it (a real process, a real store and sealed
file): find by the order's number, show, export (the audio as sealed, a new file only its owner
reads, the access logged with who), hold and release; clear errors for what cannot be done."""

from __future__ import annotations

import stat
from pathlib import Path

from callcenter.recordings import store
from callcenter.store.db import open_db

from .admin_world import recordings_cli, sealed_order_recording_in


async def test_an_operator_finds_exports_and_holds_a_recording(tmp_path: Path) -> None:
    settings, cli = recordings_cli(tmp_path)
    audio, rec = await sealed_order_recording_in(settings)

    found = cli("find", "--reference", "30000001")
    assert found.returncode == 0, found.stderr
    assert f"{rec.id}" in found.stdout and "order" in found.stdout and "sealed" in found.stdout
    assert "no recording found" in cli("find", "--reference", "99999999").stderr
    bad_day = cli("find", "--from", "2026-02-30")
    assert bad_day.returncode == 2 and "not a day" in bad_day.stderr

    out = tmp_path / "order-30000001.wav"
    exported = cli("export", str(rec.id), "-o", str(out), "--as", "compliance-li")
    assert exported.returncode == 0, exported.stderr
    assert out.read_bytes() == audio and stat.S_IMODE(out.stat().st_mode) == 0o600
    again = cli("export", str(rec.id), "-o", str(out))
    assert again.returncode == 1 and "exists: give a new file" in again.stderr
    nowhere = cli("export", str(rec.id), "-o", str(tmp_path / "no-such-dir" / "x.wav"))
    assert nowhere.returncode == 1 and "cannot write" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr

    short = cli("hold", str(rec.id), "--reason", "x")
    assert short.returncode == 1 and "3 to 200 characters" in short.stderr
    assert cli("hold", str(rec.id), "--reason", "CSRC inquiry 17", "--as", "legal").returncode == 0
    shown = cli("show", str(rec.id))
    assert "CSRC inquiry 17 (by legal)" in shown.stdout
    assert f"export   compliance-li (cli) {out}" in shown.stdout
    assert cli("release", str(rec.id), "--as", "legal").returncode == 0
    missing = cli("show", "999")
    assert missing.returncode == 1 and "no recording 999" in missing.stderr

    db = await open_db(settings.database)
    try:
        log = [(a["actor"], a["via"], a["action"]) for a in await store.access_log(db, rec.id)]
    finally:
        await db.close()
    assert log == [("compliance-li", "cli", "export"), ("legal", "cli", "hold"),
                   ("legal", "cli", "release")]
