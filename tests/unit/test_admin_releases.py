"""Releases of an operator's files (``admin/releases.py``) without HTTP: a refusal by the engine
at activation puts the old files back; the token CLI shows a token once and keeps its digest."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from callcenter.admin.releases import ReleaseKind, Releases, files_version, read_files
from callcenter.errors import AdminError
from callcenter.store.db import open_db


def _kind(directory: Path, refuse: list[str]) -> ReleaseKind:
    def check(d: Path) -> list[str]:
        return [f"{p.name}:1:1: not a mapping" for p in sorted(d.glob("*.yaml"))
                if not isinstance(yaml.safe_load(p.read_text()), dict)]

    async def activate() -> list[str]:
        # the engine refuses what has b.yaml (while ``refuse`` says so), never the files before
        return list(refuse) if (directory / "b.yaml").exists() else []

    return ReleaseKind("things", directory, re.compile(r"[a-z]+\.yaml"), check, activate)


async def test_an_activation_refused_by_the_engine_puts_the_files_back(tmp_path: Path) -> None:
    live = tmp_path / "things"
    live.mkdir()
    (live / "a.yaml").write_text("x: 1\n")
    refuse: list[str] = []
    db = await open_db(tmp_path / "db.sqlite")
    try:
        releases = Releases(db, {"things": _kind(live, refuse)})
        before = files_version(read_files(releases.kind("things")))
        bad = await releases.stage("things", {"a.yaml": "- not a mapping\n"}, by="t")
        assert bad["state"] == "refused" and bad["problems"] == ["a.yaml:1:1: not a mapping"]
        good = await releases.stage("things", {"a.yaml": "x: 2\n", "b.yaml": "y: 1\n"}, by="t")
        assert good["state"] == "staged" and good["base_version"] == before
        refuse.append("a.yaml:1:1: the engine says no")
        with pytest.raises(AdminError) as refused:
            await releases.publish("things", good["id"], by="t")
        assert refused.value.status == 422 and refused.value.problems == refuse
        assert (live / "a.yaml").read_text() == "x: 1\n" and not (live / "b.yaml").exists()
        assert (await releases.get("things", good["id"]))["state"] == "staged"
        refuse.clear()
        published = await releases.publish("things", good["id"], by="t")
        assert published["state"] == "published"
        assert sorted(p.name for p in live.iterdir()) == ["a.yaml", "b.yaml"]
        await releases.rollback("things", by="t")
        assert sorted(p.name for p in live.iterdir()) == ["a.yaml"]
        assert files_version(read_files(releases.kind("things"))) == before
    finally:
        await db.close()


def test_the_token_cli_shows_a_token_once(tmp_path: Path) -> None:
    env = {"CALLCENTER_DB_PATH": str(tmp_path / "cc.db"), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "callcenter", "api", "token", *args],
                              capture_output=True, text=True, env=env, timeout=120)

    issued = cli("add", "ops-desk", "--role", "operator")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("cc_") and "shown once" in issued.stderr
    again = cli("add", "ops-desk")
    assert again.returncode != 0 and "revoke it first" in again.stderr
    listed = cli("list")
    assert "ops-desk" in listed.stdout and "operator" in listed.stdout
    assert token not in listed.stdout
    assert cli("revoke", "ops-desk").returncode == 0
    assert "revoked" in cli("list").stdout
    assert token.encode() not in (tmp_path / "cc.db").read_bytes()
