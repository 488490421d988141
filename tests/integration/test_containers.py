"""The call center as containers (issue 15, item 1): docker/build makes the image from the
sandbox's debootstrap root with `podman import`, docker/compose.yaml starts the engine and
Asterisk under podman (podman-compose) in a network namespace of the test's own, and a real SIP
caller there reaches the IVR and hears a quote, counted by the engine's /metrics.

On this kind of host (cgroups v1 with a v2 hierarchy too, no CAP_SYS_RESOURCE) podman runs
with runc (docker/containers-runc.conf) and the compose file's lowered ulimits.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.config import REPO_ROOT

pytestmark = pytest.mark.integration

COMPOSE = REPO_ROOT / "docker" / "compose.yaml"
CONTAINERS_CONF = REPO_ROOT / "docker" / "containers-runc.conf"
BIN = Path(sys.executable).parent


def _run(argv: list[str], *, timeout: float, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:3])}... failed ({done.returncode}):\n"
                             f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done


ENV = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


@pytest.fixture(scope="module")
def image(pbx: object) -> str:
    """docker/build run (the sandbox root is provisioned once the session's PBX is up)."""
    for tool in ("podman", "runc", "nsenter", "systemd-analyze"):
        assert shutil.which(tool), f"{tool} is not installed (./dev test installs it)"
    _run([str(REPO_ROOT / "docker" / "build")], timeout=1200, env=ENV)
    return os.environ.get("CALLCENTER_IMAGE_ROOT", "/var/cache/callcenter/image-root")


@pytest.fixture(scope="module")
def stack(image: str) -> Iterator[str]:
    """The stack up in network namespace ``cc-stack-<pid>``; down, volumes and all, after."""
    env = ENV
    name = f"cc-stack-{os.getpid()}"
    _run(["ip", "netns", "add", name], timeout=10)
    compose = [str(BIN / "podman-compose"), "-p", name, "-f", str(COMPOSE)]
    try:
        _run(["ip", "-n", name, "link", "set", "lo", "up"], timeout=10)
        _run(["nsenter", f"--net=/run/netns/{name}", *compose, "up", "-d"], timeout=300,
             env=env)
        yield name
    finally:
        logs = _run(["podman", "logs", "--tail", "30", f"{name}_engine_1"], timeout=30,
                    env=env, check=False)
        print(logs.stdout[-3000:], logs.stderr[-3000:])  # shown when the test failed
        _run([*compose, "down", "-v"], timeout=180, env=env, check=False)
        _run(["ip", "netns", "del", name], timeout=10, check=False)
    left = _run(["podman", "ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}"],
                timeout=30, env=env)
    assert left.stdout.strip() == ""


def test_the_systemd_units_verify_against_the_images_root(image: str) -> None:
    """The units (docker/systemd) as systemd reads them, in the image's root where their
    programs and users exist, with the drop-in that shares Asterisk's files with the engine's
    group. (Booting them is not possible here: this host's PID 1 is not
    systemd, and the image's systemd needs the unified cgroup hierarchy: docs/deployment.md.)"""
    done = _run(["systemd-analyze", "verify", "--man=no", f"--root={image}",
                 "callcenter.service", "callcenter-pbx.service",
                 "callcenter-channel@sms.service", "asterisk.service"], timeout=120, check=False)
    # ours: what names our units, or a file installed in /etc/systemd/system (our units, the
    # drop-in); not the image's own units, which this host's older systemd-analyze reads with
    # complaints. (--man=no: Debian's asterisk.service names a man page the image has not.)
    ours = [line for line in (done.stdout + done.stderr).splitlines()
            if line.startswith(("callcenter", "asterisk.service"))
            or "/etc/systemd/system/" in line]
    assert done.returncode == 0 and ours == [], ours


def test_the_stack_starts_under_podman_and_answers_a_sip_call(stack: str) -> None:
    done = _run(["nsenter", f"--net=/run/netns/{stack}", sys.executable,
                 str(Path(__file__).with_name("container_call.py"))], timeout=400)
    heard = json.loads(done.stdout.strip().splitlines()[-1])
    assert heard["ok"], heard["detail"]
    visits = {line.split(" ")[0] for line in heard["visits"]}
    # the caller went through the hotline's menu to a quote, read back to them
    assert 'callcenter_ivr_node_visits_total{flow="quotes",node="tell"}' in visits, visits
    # the call's CDR is in the asterisk-log volume (kept when the container is recreated)
    mount = _run(["podman", "volume", "inspect", "--format", "{{.Mountpoint}}",
                  f"{stack}_asterisk-log"], timeout=30, env=ENV).stdout.strip()
    assert _cdr_rows(Path(mount) / "cdr.db") > 0


def _cdr_rows(path: Path) -> int:
    """The CDR rows Asterisk has written (it writes a call's at its end: waited for, briefly)."""
    for _ in range(100):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                rows = int(db.execute("SELECT count(*) FROM cdr").fetchone()[0])
        except sqlite3.Error:   # not there yet, no table yet, or busy: look again
            rows = 0
        if rows:
            return rows
        time.sleep(0.1)
    return 0
