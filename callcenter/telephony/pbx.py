"""The sandbox PBX: provision, start, stop and query a real Asterisk.

``sandbox`` mode runs Asterisk 22 from Debian sid in a debootstrap chroot cached outside the
repository (``PbxSettings.root``); ``system`` mode drives an Asterisk already installed on the
host. Either way the project's ``asterisk_conf/`` is installed as the complete configuration,
plus a generated ``manager_secret.conf`` holding the AMI secret, ``manager_keys_secret.conf``
the key tap's own AMI secret and ``agi_key.conf`` the FastAGI session key (all kept 0600 in the
state dir).

This module manages processes and mounts for the CLI and the test session; it is never called
from the engine's event loop, so it uses plain blocking ``subprocess`` calls.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from callcenter.config import Settings
from callcenter.errors import ConfigError, PbxError
from callcenter.sip.certs import ServerCert, ensure_server_cert
from callcenter.sip.edge_conf import (
    render_event_filter,
    render_http,
    render_manager_tls,
    render_realm,
    render_rtp,
    render_transports,
)
from callcenter.sip.trunks import install_trunks
from callcenter.telephony.agi_auth import DIALPLAN_KEY_VARIABLE
from callcenter.telephony.ami_events import ENGINE_EVENTS, KEY_TAP_EVENTS, KEY_TAP_ONLY

_CHOWN_DIRS = ("/run/asterisk", "/var/lib/asterisk", "/var/spool/asterisk", "/var/log/asterisk",
               "/etc/asterisk")
#: the file ``install`` writes last into Asterisk's configuration directory
INSTALLED_STAMP = "callcenter.installed"
_PACKAGES = "asterisk,asterisk-core-sounds-en-gsm,asterisk-moh-opsound-gsm"
_BIND_MOUNTS = ("proc", "dev")
#: IVR messages (``ivr.runner.AgiFlowIO.record``); created on ``up``, owned by asterisk
RECORDINGS = "/var/spool/asterisk/recording/callcenter"
#: faxes: out (to send), in (received on the fax number), sim (the sandbox's fax machines)
FAX_SPOOL = "/var/spool/asterisk/fax"
FAX_DIRS = tuple(f"{FAX_SPOOL}/{d}" for d in ("out", "in", "sim"))
#: the simulated parties' dialplan, installed only where ``simulated_parties`` says so
SANDBOX_DIALPLAN = "extensions_sandbox.conf"
#: ... and the sandbox's carrier trunk (simulated SIP callers)
SANDBOX_FILES = frozenset({SANDBOX_DIALPLAN, "pjsip_sandbox.conf"})


@dataclass(frozen=True)
class PbxStatus:
    running: bool
    pid: int | None
    mounts: tuple[str, ...]
    provisioned: bool
    version: str

    def describe(self) -> str:
        state = f"running (pid {self.pid})" if self.running else "stopped"
        lines = [f"asterisk: {state}", f"version: {self.version or 'unknown'}",
                 f"provisioned: {'yes' if self.provisioned else 'no'}"]
        if self.mounts:
            lines.append("mounts: " + ", ".join(self.mounts))
        return "\n".join(lines)


class Pbx:
    """One Asterisk, sandboxed or system-wide, as the settings say."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.pbx
        self.sandbox = self.cfg.mode == "sandbox"
        self.root = self.cfg.root if self.sandbox else Path("/")
        self.state_dir = settings.state_dir
        suffix = f"-{self.cfg.instance}" if self.cfg.instance else ""
        #: this instance's own directories inside the root (a second instance shares the rest)
        self.dirs = {name: f"{path}{suffix}" for name, path in _INSTANCE_DIRS.items()}
        #: Asterisk writes its own pid here, also after ``core restart`` (which re-execs it)
        self.pidfile = self._in_root(f"{self.dirs['astrundir']}/asterisk.pid")
        self.logfile = self.state_dir / "pbx.log"

    # -- paths and commands ------------------------------------------------------------------

    def _in_root(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def _cmd(self, *argv: str) -> list[str]:
        if argv and argv[0] == "asterisk" and self.cfg.instance:
            argv = ("asterisk", "-C", f"{self.dirs['astetcdir']}/asterisk.conf", *argv[1:])
        cmd = ["chroot", str(self.root), *argv] if self.sandbox else list(argv)
        return ["ip", "netns", "exec", self.cfg.netns, *cmd] if self.cfg.netns else cmd

    def _run(self, *argv: str, timeout: float = 30, check: bool = True) -> str:
        try:
            done = subprocess.run(self._cmd(*argv), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PbxError(f"{argv[0]} failed: {exc}") from exc
        if check and done.returncode != 0:
            raise PbxError(f"{' '.join(argv[:2])} failed: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    # -- provisioning ------------------------------------------------------------------------

    @property
    def provisioned(self) -> bool:
        return self._in_root("/usr/sbin/asterisk").exists()

    def provision(self) -> None:
        """Build the sid chroot once (about a minute); later calls reuse the cache."""
        if not self.sandbox or self.provisioned:
            return
        if shutil.which("debootstrap") is None:
            raise PbxError("debootstrap is not installed (the setup script installs it)")
        mirror = self.cfg.mirror or apt_mirror()
        tmp = self.root.with_name(self.root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        argv = ["debootstrap", "--variant=minbase", f"--include={_PACKAGES}",
                self.cfg.suite, str(tmp), mirror]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise PbxError(f"debootstrap of Debian {self.cfg.suite} failed:\n{tail}")
        tmp.rename(self.root)

    @property
    def simulated_parties(self) -> bool:
        """Whether the simulated parties' dialplan is installed (sandbox mode by default)."""
        wanted = self.cfg.simulated_parties
        return self.sandbox if wanted is None else wanted

    def ami_secret(self) -> str:
        """The AMI secret, generated on first use and kept 0600 in the state directory."""
        if self.settings.ami.secret is not None:
            return self.settings.ami.secret.get_secret_value()
        return _state_secret(self.settings.ami_secret_file)

    def ami_keys_secret(self) -> str:
        """The key tap's own AMI secret (``telephony/key_tap.py``), generated like the other."""
        if self.settings.ami.keys_secret is not None:
            return self.settings.ami.keys_secret.get_secret_value()
        return _state_secret(self.settings.ami_keys_secret_file)

    def agi_key(self) -> str:
        """The FastAGI session key (telephony/agi_auth.py), generated like the AMI secret."""
        if self.settings.agi.key is not None:
            return self.settings.agi.key.get_secret_value()
        return _state_secret(self.settings.agi_key_file)

    def installed_agi_key_matches(self) -> bool | None:
        """Whether the installed ``agi_key.conf`` holds this engine's FastAGI key (``None``: no
        configuration installed here). The key itself is never returned or printed."""
        etc = self.etc_dir()
        if not (etc / "extensions.conf").is_file():
            return None
        try:
            text = (etc / "agi_key.conf").read_text(encoding="ascii")
        except OSError:
            return False  # a configuration from before FastAGI keys
        try:
            key = self.settings.agi_key().get_secret_value()
        except ConfigError:
            return False
        return text.strip() == f"{DIALPLAN_KEY_VARIABLE} = {key}"

    def install_config(self) -> None:
        """Replace Asterisk's configuration with the project's, plus the secret include."""
        src = self.cfg.conf_dir
        if not (src / "modules.conf").is_file():
            raise PbxError(f"{src} holds no Asterisk configuration (modules.conf missing)")
        etc = self.etc_dir()
        etc.mkdir(parents=True, exist_ok=True)
        for old in etc.iterdir():
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
        for conf in sorted(src.iterdir()):
            if conf.name in SANDBOX_FILES and not self.simulated_parties:
                continue  # a site's Asterisk gets no context it does not need
            if conf.is_file():
                shutil.copy2(conf, etc / conf.name)
        secret_conf = etc / "manager_secret.conf"
        fd = os.open(secret_conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"secret = {self.ami_secret()}\n")
        # The key tap's user has a secret of its own: the call-control secret cannot read keys.
        fd = os.open(etc / "manager_keys_secret.conf", os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o640)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"secret = {self.ami_keys_secret()}\n")
        # Included in extensions.conf's [globals]: the key the dialplan's AGI tokens are made with.
        fd = os.open(etc / "agi_key.conf", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"{DIALPLAN_KEY_VARIABLE} = {self.agi_key()}\n")
        # Also in [globals]: where recordings may be written (the dialplan refuses other paths).
        (etc / "paths.conf").write_text(
            f"CC_REC_DIR = {self.settings.acd.recordings_dir}\n", encoding="ascii")
        if self.cfg.instance:
            _rewrite_directories(etc / "asterisk.conf", self.dirs)
        self.install_sip_edge(etc)
        install_trunks(etc, self.settings.trunks, simulated=self.simulated_parties)
        self.install_sounds()

    def etc_dir(self) -> Path:
        """Where this Asterisk reads its configuration (inside the root, or the system's)."""
        return self._in_root(self.dirs["astetcdir"]) if self.sandbox else self.cfg.system_etc

    def server_cert(self) -> ServerCert:
        """The site's certificate (``sip.tls_cert``/``tls_key``), else the sandbox's own, made
        by a local CA in ``<state_dir>/tls`` for the names the SIP edge is reached by."""
        sip = self.settings.sip
        if sip.tls_cert is not None or sip.tls_key is not None:
            if sip.tls_cert is None or sip.tls_key is None \
                    or not sip.tls_cert.is_file() or not sip.tls_key.is_file():
                raise PbxError("sip.tls_cert and sip.tls_key must both name readable PEM files")
            return ServerCert(sip.tls_cert, sip.tls_cert, sip.tls_key)
        names = ["127.0.0.1", "localhost", socket.gethostname(), sip.bind,
                 sip.external_address or "", *sip.cert_names]
        return ensure_server_cert(self.settings.tls_dir, names)

    def install_sip_edge(self, etc: Path) -> None:
        """The generated transports and HTTP server, and the certificate they present."""
        sip = self.settings.sip
        (etc / "pjsip_transports.conf").write_text(render_transports(sip), encoding="ascii")
        (etc / "pjsip_realm.conf").write_text(render_realm(sip), encoding="ascii")
        (etc / "http.conf").write_text(render_http(sip), encoding="ascii")
        (etc / "rtp.conf").write_text(render_rtp(sip), encoding="ascii")
        (etc / "manager_tls.conf").write_text(render_manager_tls(self.settings.ami.tls_port),
                                              encoding="ascii")
        (etc / "manager_events.conf").write_text(render_event_filter(ENGINE_EVENTS),
                                                 encoding="ascii")
        keys_filter = render_event_filter(KEY_TAP_EVENTS, KEY_TAP_ONLY)
        (etc / "manager_keys_events.conf").write_text(keys_filter, encoding="ascii")
        cert = self.server_cert()
        keys = etc / "keys"
        keys.mkdir(mode=0o750, exist_ok=True)
        shutil.copyfile(cert.cert, keys / "server.pem")
        shutil.copyfile(cert.ca, keys / "ca.pem")
        fd = os.open(keys / "server.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert.key.read_bytes())

    def install_sounds(self) -> None:
        """Copy the built prompts to where Asterisk finds them as ``callcenter/<lang>/<id>``."""
        src = self.cfg.sounds_dir
        dest = self._in_root("/usr/share/asterisk/sounds/callcenter")
        # emptied, not removed: in a container stack the directory is a volume's mount point
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.iterdir():
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
        if src.is_dir():
            for lang_dir in sorted(p for p in src.iterdir() if p.is_dir()):
                shutil.copytree(lang_dir, dest / lang_dir.name,
                                ignore=shutil.ignore_patterns("*.yaml", "*.txt", "*.md"))

    # -- running -----------------------------------------------------------------------------

    def _mounts(self) -> list[str]:
        if not self.sandbox:
            return []
        root = str(self.root.resolve())
        try:
            lines = Path("/proc/mounts").read_text().splitlines()
        except OSError:
            return []
        points = [line.split()[1] for line in lines if len(line.split()) > 1]
        return [p for p in points if p == root or p.startswith(root + "/")]

    def _hosts(self) -> None:
        """The root's /etc/hosts names this host: without it every call that makes a DTLS
        certificate or a SIP URI asks DNS for it and waits (seconds per call)."""
        hosts = self._in_root("/etc/hosts")
        name = socket.gethostname()
        text = hosts.read_text(encoding="utf-8") if hosts.exists() else ""
        if not any(name in line.split()[1:] for line in text.splitlines() if line.strip()):
            hosts.write_text(f"127.0.0.1 localhost {name}\n::1 localhost\n" + text,
                             encoding="utf-8")

    def _mount(self) -> None:
        present = set(self._mounts())
        for name in _BIND_MOUNTS:
            target = self._in_root("/" + name)
            target.mkdir(exist_ok=True)
            if str(target.resolve()) not in present:
                subprocess.run(["mount", "--bind", "/" + name, str(target)], check=True)

    def _unmount(self) -> None:
        # Deepest first, so nested mounts (dev/pts, if any) go before their parent.
        for point in sorted(self._mounts(), key=len, reverse=True):
            done = subprocess.run(["umount", point], capture_output=True, check=False)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def install(self) -> None:
        """The configuration, prompts and directories Asterisk needs, written into the root
        without starting it: ``up`` does this first; a container stack runs it from the
        engine's image into the volumes its Asterisk container mounts (docker/)."""
        self.install_config()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for own in self.dirs.values():
            self._in_root(own).mkdir(parents=True, exist_ok=True)
        for spool in (RECORDINGS, *FAX_DIRS):
            self._in_root(spool).mkdir(parents=True, exist_ok=True)
        # written last (install_config removed the old one first): whoever starts Asterisk
        # from these files (docker/asterisk-entrypoint) waits for it
        (self.etc_dir() / INSTALLED_STAMP).write_text("installed by callcenter pbx install\n",
                                                       encoding="ascii")

    def up(self) -> None:
        """Provision if needed, install the configuration, start Asterisk, wait for AMI."""
        if self.pid() is not None:
            return
        self.provision()
        self.install()
        self._run("chown", "-R", "asterisk:asterisk", *_CHOWN_DIRS, *self.dirs.values())
        if self.sandbox:
            self._hosts()
            self._mount()
        self.pidfile.unlink(missing_ok=True)
        # setsid --fork: Asterisk is nobody's child, so neither this CLI nor a test session
        # holds a process handle for a daemon that outlives it.
        with open(self.logfile, "ab") as log:
            done = subprocess.run(
                ["setsid", "--fork",
                 *self._cmd("asterisk", "-f", "-U", "asterisk", "-G", "asterisk")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=False,
            )
        if done.returncode != 0:
            self._unmount()
            raise PbxError(f"cannot start asterisk; see {self.logfile}")
        try:
            self.wait_ready(self.cfg.start_timeout)
        except PbxError:
            self.down()
            raise

    def wait_ready(self, timeout: float) -> None:
        """Return when Asterisk is fully booted and AMI greets us."""
        deadline = time.monotonic() + timeout
        seen = False
        while time.monotonic() < deadline:
            running = self.pid() is not None
            if seen and not running:
                raise PbxError(f"asterisk exited during start-up; see {self.logfile}")
            seen = seen or running
            booted = subprocess.run(self._cmd("asterisk", "-rx", "core waitfullybooted"),
                                    capture_output=True, text=True, timeout=timeout,
                                    check=False)
            # (in another network namespace, AMI's loopback is not ours to probe)
            if booted.returncode == 0 and (self.cfg.netns or ami_banner(self.settings)):
                return
            time.sleep(0.2)
        raise PbxError(f"asterisk did not answer on AMI within {timeout:.0f}s; see {self.logfile}")

    def down(self) -> None:
        """Stop Asterisk and remove every mount; idempotent."""
        pid = self.pid()
        if pid is not None:
            subprocess.run(self._cmd("asterisk", "-rx", "core stop now"),
                           capture_output=True, timeout=20, check=False)
            if not self._wait_exit(pid, 15):
                os.killpg(pid, signal.SIGTERM)
                if not self._wait_exit(pid, 5):
                    os.killpg(pid, signal.SIGKILL)
                    self._wait_exit(pid, 5)
        if not self.cfg.instance:  # the main instance's mounts serve a second one too
            self._unmount()

    def kill(self) -> None:
        """Kill Asterisk without warning (fault tests); mounts stay for a following ``up``."""
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            self._wait_exit(pid, 5)
        self.pidfile.unlink(missing_ok=True)

    @staticmethod
    def _wait_exit(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    def cli(self, command: str, timeout: float = 30) -> str:
        """Run one Asterisk CLI command through the console socket (not through AMI)."""
        if self.pid() is None and self.sandbox:
            raise PbxError("the sandbox PBX is not running; start it with 'callcenter pbx up'")
        return self._run("asterisk", "-rx", command, timeout=timeout)

    def status(self) -> PbxStatus:
        pid = self.pid()
        version = ""
        if self.provisioned:
            version = self._run("asterisk", "-V", check=False).strip()
        return PbxStatus(pid is not None, pid, tuple(self._mounts()), self.provisioned, version)


#: the directories a second instance has of its own (``PbxSettings.instance``)
_INSTANCE_DIRS = {"astetcdir": "/etc/asterisk", "astdbdir": "/var/lib/asterisk",
                  "astrundir": "/run/asterisk", "astlogdir": "/var/log/asterisk"}


def _rewrite_directories(conf: Path, dirs: dict[str, str]) -> None:
    """Point an instance's ``asterisk.conf`` at its own directories."""
    lines = []
    for line in conf.read_text(encoding="utf-8").splitlines():
        name = line.split("=>", 1)[0].strip()
        lines.append(f"{name} => {dirs[name]}" if name in dirs and "=>" in line else line)
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")


def ami_banner(settings: Settings, timeout: float = 2.0) -> str | None:
    """The AMI greeting line, or None if nothing answers at the configured address."""
    try:
        with socket.create_connection((settings.ami.host, settings.ami.port), timeout) as sock:
            sock.settimeout(timeout)
            data = sock.recv(128).decode("ascii", "replace")
    except OSError:
        return None
    return data.strip() if data.startswith("Asterisk Call Manager/") else None


def apt_mirror() -> str:
    """The Debian mirror this machine already uses (deb822 ``URIs:`` or sources.list)."""
    candidates = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in candidates:
        for line in path.read_text().splitlines():
            if line.startswith("URIs:"):
                for uri in line.split()[1:]:
                    if "security" not in uri:
                        return uri
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb":
                uri = next(p for p in parts[1:] if not p.startswith("["))
                if "security" not in uri:
                    return uri
    raise PbxError("no Debian mirror found in /etc/apt/sources*; set CALLCENTER_PBX__MIRROR")


def _state_secret(path: Path) -> str:
    """A random secret kept in ``path`` (0600), made on first use."""
    if path.exists():
        value = path.read_text(encoding="ascii").strip()
        if value:
            return value
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(value + "\n")
    return value
