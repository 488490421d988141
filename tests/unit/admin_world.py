"""A running administration API for the unit and contract tests: a real SQLite store, a copy
of the shipped flows and strategies, served over loopback by the operations server (no
Asterisk, no ACD)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from callcenter.admin.api import admin_app
from callcenter.admin.services import AdminServices
from callcenter.admin.tokens import Role, digest, issue_token
from callcenter.config import REPO_ROOT, Settings, load_settings
from callcenter.engine import ACTION_NAMES
from callcenter.ivr.registry import FlowRegistry
from callcenter.ops.http import OpsServer, make_app
from callcenter.recordings.keeper import RecordingKeeper
from callcenter.recordings.store import Recording
from callcenter.store.db import open_db

#: the test trunk's password: never in an answer
TRUNK_PASSWORD = "trunk-Secret-4711"
#: an admin token every test world has
CONTRACT_TOKEN = "cc_contract-test-admin-token"


@dataclass
class AdminWorld:
    settings: Settings
    db: aiosqlite.Connection
    flows: FlowRegistry
    services: AdminServices
    base_url: str
    tokens: dict[str, str]   # role word -> a live token of that role

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@asynccontextmanager
async def admin_world(tmp_path: Path) -> AsyncIterator[AdminWorld]:
    flows_dir, strategies_dir = tmp_path / "flows", tmp_path / "strategies"
    shutil.copytree(REPO_ROOT / "ivr_flows", flows_dir)
    shutil.copytree(REPO_ROOT / "strategies", strategies_dir)
    settings = load_settings(db_path=tmp_path / "callcenter.db", flows_dir=flows_dir,
                             strategies={"dir": strategies_dir}, state_dir=tmp_path / "state",
                             pbx={"root": tmp_path / "pbx-root"},
                             trunks=[{"name": "carrier", "host": "192.0.2.1",
                                      "username": "acct", "password": TRUNK_PASSWORD,
                                      "caller_id": "02150000000"}])
    db = await open_db(settings.database)
    flows = FlowRegistry(flows_dir, actions=ACTION_NAMES,
                         queues=frozenset(q.name for q in settings.acd.queues))
    flows.load()
    keeper = RecordingKeeper(settings, db)
    services = AdminServices(settings, db, flows=flows, keeper=keeper)
    tokens = {role.word: await issue_token(db, f"test-{role.word}", role) for role in Role}
    # and one known before the API starts (the contract test's generated requests carry it)
    await db.execute("INSERT INTO api_tokens (name, role, digest, created_at)"
                     " VALUES ('contract', 'admin', ?, 0)", (digest(CONTRACT_TOKEN),))
    server = OpsServer(make_app(mounts={"/api": admin_app(services)}), "127.0.0.1", 0)
    await server.start()
    try:
        yield AdminWorld(settings, db, flows, services, f"http://127.0.0.1:{server.port}/api",
                         tokens)
    finally:
        await server.close()
        await db.close()


async def sealed_order_recording(settings: Settings, db: aiosqlite.Connection,
                                 keeper: RecordingKeeper, size: int = 50_000) -> bytes:
    """The IVR's proof of order 30000001 (account 10000001, call c1), sealed by ``keeper``;
    its plain audio."""
    audio = b"RIFF" + os.urandom(size)
    path = "/var/spool/asterisk/monitor/callcenter/20261201/c1-proof-0123456789abcdef.wav"
    settings.pbx_path(path).parent.mkdir(parents=True)
    settings.pbx_path(path).write_bytes(audio)
    await db.execute(
        "INSERT INTO intents (key, kind, call_id, account, summary, state, result, created_at,"
        " updated_at) VALUES ('0123456789abcdef', 'order', 'c1', '10000001', '{}', 'done',"
        " '{\"order_no\": \"30000001\"}', 0, 0)")
    await db.execute(
        "INSERT INTO recordings (call_id, agent_id, account, path, started_at, ended_at, kind,"
        " intent_key) VALUES ('c1', '', '10000001', ?, ?, ?, 'proof', '0123456789abcdef')",
        (path, time.time() - 60, time.time() - 30))
    assert await keeper.round() == (1, 0)
    return audio


RecordingsCli = Callable[..., "subprocess.CompletedProcess[str]"]


def recordings_cli(tmp_path: Path) -> tuple[Settings, RecordingsCli]:
    """Settings on ``tmp_path`` and ``callcenter recordings ...`` run as a process on them."""
    env = {"CALLCENTER_DB_PATH": str(tmp_path / "cc.db"),
           "CALLCENTER_STATE_DIR": str(tmp_path / "state"),
           "CALLCENTER_PBX__ROOT": str(tmp_path / "pbx-root"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    settings = load_settings(db_path=tmp_path / "cc.db", state_dir=tmp_path / "state",
                             pbx={"root": tmp_path / "pbx-root"})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "callcenter", "recordings", *args],
                              capture_output=True, text=True, env=env, timeout=120)

    return settings, cli


async def sealed_order_recording_in(settings: Settings) -> tuple[bytes, Recording]:
    """``sealed_order_recording`` in the database ``settings`` name (opened and closed here):
    its plain audio and its row."""
    from callcenter.recordings import store

    db = await open_db(settings.database)
    try:
        audio = await sealed_order_recording(settings, db, RecordingKeeper(settings, db))
        (rec,) = await store.search(db, {"reference": "30000001"})
    finally:
        await db.close()
    return audio, rec
