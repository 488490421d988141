"""``callcenter call`` and ``callcenter doctor`` as a newcomer meets them: argument checks, which
message (and exit status) each failure gets, and Ctrl-C hanging up the call it placed.

The AMI client is replaced by a stub; the engine's FastAGI port is a real local socket (listening
or not), so the checks run as they do against the sandbox."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from callcenter import cli
from callcenter.config import Settings, load_settings
from callcenter.errors import (
    AmiActionError,
    AmiAuthError,
    AmiConnectionError,
    UnsafeValueError,
)
from callcenter.telephony import ami as ami_module
from callcenter.telephony.ami_events import AmiEvent, ChannelInfo, Hangup, NewChannel

# -- fixtures --------------------------------------------------------------------------------------


class StubAmi:
    """What ``callcenter call`` uses of AmiClient. ``on_originate`` decides what happens."""

    instances: ClassVar[list[StubAmi]] = []
    connect_error: ClassVar[Exception | None] = None
    on_originate: ClassVar[Callable[[StubAmi, dict[str, Any]], Any] | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.handlers: list[Callable[[AmiEvent], None]] = []
        self.originated: list[dict[str, Any]] = []
        self.actions: list[tuple[str, dict[str, Any]]] = []
        self.closed = False
        StubAmi.instances.append(self)

    async def connect(self) -> None:
        if StubAmi.connect_error is not None:
            raise StubAmi.connect_error

    async def close(self) -> None:
        self.closed = True

    def add_handler(self, handler: Callable[[AmiEvent], None]) -> None:
        self.handlers.append(handler)

    def remove_handler(self, handler: Callable[[AmiEvent], None]) -> None:
        self.handlers.remove(handler)

    async def originate(self, **headers: Any) -> tuple[dict[str, str], dict[str, str]]:
        self.originated.append(headers)
        if StubAmi.on_originate is not None:
            got = StubAmi.on_originate(self, headers)
            if asyncio.iscoroutine(got):
                await got
        return {}, {"Response": "Success"}

    async def action(self, action: str, **headers: Any) -> dict[str, str]:
        self.actions.append((action, headers))
        return {"Response": "Success"}

    def emit(self, event: AmiEvent) -> None:
        for handler in list(self.handlers):
            handler(event)


@pytest.fixture
def engine_port() -> Iterator[int]:
    """A listening socket where the engine's FastAGI server would be."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings_at(tmp_path: Path, agi_port: int) -> Settings:
    return load_settings(state_dir=tmp_path / "state", ami={"secret": "s3cret"},
                         agi={"port": agi_port}, channels={"enabled": False})


@pytest.fixture
def stub_ami(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[StubAmi]]:
    StubAmi.instances = []
    StubAmi.connect_error = None
    StubAmi.on_originate = None
    monkeypatch.setattr(ami_module, "AmiClient", StubAmi)
    yield StubAmi


@pytest.fixture
def running(tmp_path: Path, engine_port: int, monkeypatch: pytest.MonkeyPatch,
            stub_ami: type[StubAmi]) -> Iterator[type[StubAmi]]:
    """Asterisk (the stub) and the engine (a listening port) both up; Ctrl-C (SIGINT) as in a
    terminal, even when the test run inherited it ignored (started in the background by a
    non-interactive shell, as CI does)."""
    monkeypatch.setattr(cli, "_settings", lambda: _settings_at(tmp_path, engine_port))
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield stub_ami
    finally:
        signal.signal(signal.SIGINT, before)


def _info(uid: str, linked: str) -> ChannelInfo:
    return ChannelInfo(uid, linked, f"Local/9500@hotline-{uid}", 6, "Up", "138", "", "hotline",
                       "9500")


def _ends_after(delay: float, cause: int = 16) -> Callable[[StubAmi, dict[str, Any]], Any]:
    """The call comes up and ends ``delay`` seconds later."""
    def originate(ami: StubAmi, headers: dict[str, Any]) -> None:
        call_id = headers["ChannelId"]
        loop = asyncio.get_running_loop()
        loop.call_soon(ami.emit, NewChannel(_info(call_id, call_id)))
        loop.call_later(delay, ami.emit, Hangup(_info(call_id, call_id), cause, "Normal"))
    return originate


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("callcenter: error:")]


# -- argument checks -------------------------------------------------------------------------------

def test_negative_hold_is_refused_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["call", "9500", "--hold", "-5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --hold" in err and "0 or more" in err and "-5" in err


def test_hold_that_is_not_a_number_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["call", "9500", "--hold", "ten"])
    assert "argument --hold" in capsys.readouterr().err


def test_zero_hold_is_allowed() -> None:
    args = cli.build_parser().parse_args(["call", "9500", "--hold", "0"])
    assert args.hold == 0


@pytest.mark.parametrize("hold", [0, 60, 200, 3600])
def test_default_wait_is_longer_than_hold(hold: int) -> None:
    args = cli.build_parser().parse_args(["call", "9500", "--hold", str(hold), "--dtmf",
                                          "1w600519w2w#"])
    wait = cli._call_wait_s(args)
    assert wait >= hold + 30
    # the keys take time too (up to a second each, W pauses)
    assert wait >= hold + 30 + len("1w600519w2w#")


def test_an_explicit_timeout_is_kept() -> None:
    args = cli.build_parser().parse_args(["call", "9500", "--hold", "60", "--timeout", "5"])
    assert cli._call_wait_s(args) == 5


def test_timeout_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["call", "9500", "--timeout", "0"])
    assert "argument --timeout" in capsys.readouterr().err


def test_help_says_how_long_call_waits_and_its_exit_statuses(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["call", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--hold + 30" in text
    assert "3 " in text and "not running" in text


# -- DTMF ------------------------------------------------------------------------------------------

def test_keys_the_ivr_ignores_are_left_out_and_named() -> None:
    assert cli._call_keys("1w600519w2W#") == ("1w600519w2W#", "")
    assert cli._call_keys("1 600519") == ("1600519", " ")
    assert cli._call_keys("1A-2a-B") == ("12", "A-aB")


def test_control_characters_in_keys_are_still_refused() -> None:
    with pytest.raises(UnsafeValueError, match="refused"):
        cli._call_keys("1\r\nAction: Originate")


def test_ignored_keys_warn_on_one_line_and_the_call_goes_on(
        running: type[StubAmi], capsys: pytest.CaptureFixture[str]) -> None:
    StubAmi.on_originate = _ends_after(0.01)
    code = cli.main(["call", "9500", "--dtmf", "1 6A#", "--hold", "0"])
    out, err = capsys.readouterr()
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and err.strip() == warnings[0], err
    assert "' '" in warnings[0] and "'A'" in warnings[0] and "0-9 * #" in warnings[0]
    sent = running.instances[0].originated[0]["Variable"]
    assert "CALLER_DTMF=16#" in sent
    assert "placed to 9500" in out


def test_clean_keys_give_no_warning(running: type[StubAmi],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    StubAmi.on_originate = _ends_after(0.01)
    assert cli.main(["call", "9500", "--dtmf", "1w2W3#", "--hold", "0"]) == 0
    assert capsys.readouterr().err == ""


# -- which failure, which message ------------------------------------------------------------------

def test_asterisk_not_running_is_exit_3_and_says_how_to_start_it(
        tmp_path: Path, engine_port: int, monkeypatch: pytest.MonkeyPatch,
        stub_ami: type[StubAmi], capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "_settings", lambda: _settings_at(tmp_path, engine_port))
    stub_ami.connect_error = AmiConnectionError(
        "cannot reach Asterisk AMI at 127.0.0.1:5038: [Errno 111] Connect call failed")
    code = cli.main(["call", "9500"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_NOT_RUNNING == 3
    [line] = _errors(err)
    assert "not running" in line and "./dev up" in line and "127.0.0.1:5038" in line


def test_ami_login_refused_is_exit_3_with_its_own_message(
        tmp_path: Path, engine_port: int, monkeypatch: pytest.MonkeyPatch,
        stub_ami: type[StubAmi], capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "_settings", lambda: _settings_at(tmp_path, engine_port))
    stub_ami.connect_error = AmiAuthError(
        "Asterisk refused the AMI login of user 'callcenter': Authentication failed")
    code = cli.main(["call", "9500"])
    [line] = _errors(capsys.readouterr().err)
    assert code == cli.EXIT_NOT_RUNNING
    assert "refused the AMI login" in line and "callcenter pbx" in line


def test_engine_not_running_is_exit_3_and_says_callcenter_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_ami: type[StubAmi],
        capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()  # nothing listens: no engine
    monkeypatch.setattr(cli, "_settings", lambda: _settings_at(tmp_path, port))
    code = cli.main(["call", "9500"])
    [line] = _errors(capsys.readouterr().err)
    assert code == cli.EXIT_NOT_RUNNING
    assert "engine is not running" in line and "callcenter run" in line
    assert f"127.0.0.1:{port}" in line
    assert stub_ami.instances[0].originated == []  # no call placed into a dead hotline


def test_no_such_extension_is_exit_1_and_names_the_hotline(
        running: type[StubAmi], capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(ami: StubAmi, headers: dict[str, Any]) -> None:
        raise AmiActionError("Originate", "1 (call not placed)")
    StubAmi.on_originate = refuse
    code = cli.main(["call", "12345"])
    [line] = _errors(capsys.readouterr().err)
    assert code == cli.EXIT_CALL_FAILED == 1
    assert "12345 did not answer" in line and "9500" in line
    assert "not running" not in line


def test_the_two_kinds_of_failure_read_differently(
        running: type[StubAmi], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(ami: StubAmi, headers: dict[str, Any]) -> None:
        raise AmiActionError("Originate", "0 (call not placed)")
    StubAmi.on_originate = refuse
    no_answer = cli.main(["call", "9599"]), _errors(capsys.readouterr().err)
    monkeypatch.setattr(cli, "_settings", lambda: _settings_at(tmp_path, _free_port()))
    not_running = cli.main(["call", "9599"]), _errors(capsys.readouterr().err)
    assert no_answer[0] != not_running[0]
    assert no_answer[1] != not_running[1]


# -- Ctrl-C and the wait ---------------------------------------------------------------------------

def _interrupt_after_placing(ami: StubAmi, headers: dict[str, Any]) -> None:
    call_id = headers["ChannelId"]
    loop = asyncio.get_running_loop()
    loop.call_soon(ami.emit, NewChannel(_info(call_id, call_id)))
    # what the terminal does on Ctrl-C, once the call is up
    loop.call_later(0.05, signal.raise_signal, signal.SIGINT)


def test_ctrl_c_hangs_up_the_call_it_placed(running: type[StubAmi],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    StubAmi.on_originate = _interrupt_after_placing
    code = cli.main(["call", "9500", "--hold", "600"])
    out, err = capsys.readouterr()
    assert code == 130, err
    ami = running.instances[0]
    call_id = ami.originated[0]["ChannelId"]
    assert ("Hangup", {"Channel": call_id}) in ami.actions
    assert f"call {call_id} hung up" in out
    assert "Traceback" not in err
    assert ami.closed


def test_ctrl_c_while_the_call_is_being_placed_hangs_it_up_too(
        running: type[StubAmi], capsys: pytest.CaptureFixture[str]) -> None:
    async def slow_answer(ami: StubAmi, headers: dict[str, Any]) -> None:
        asyncio.get_running_loop().call_later(0.05, signal.raise_signal, signal.SIGINT)
        await asyncio.sleep(30)  # the OriginateResponse never comes before Ctrl-C
    StubAmi.on_originate = slow_answer
    code = cli.main(["call", "9500"])
    out, _ = capsys.readouterr()
    assert code == 130
    ami = running.instances[0]
    call_id = ami.originated[0]["ChannelId"]
    assert ("Hangup", {"Channel": call_id}) in ami.actions
    assert "hung up" in out


def test_a_call_still_up_at_the_timeout_is_hung_up_with_one_line(
        running: type[StubAmi], capsys: pytest.CaptureFixture[str]) -> None:
    StubAmi.on_originate = _ends_after(30)
    code = cli.main(["call", "9500", "--timeout", "0.1"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_CALL_FAILED
    ami = running.instances[0]
    call_id = ami.originated[0]["ChannelId"]
    assert ("Hangup", {"Channel": call_id}) in ami.actions
    [line] = _errors(err)
    assert "--timeout" in line and "hung up" in line and "Traceback" not in err


# -- doctor: the engine ----------------------------------------------------------------------------

def test_engine_check_messages() -> None:
    ok, line = cli._engine_check("127.0.0.1:4573", listening=True, port_free=False, pid=None)
    assert ok and "engine running" in line
    ok, line = cli._engine_check("127.0.0.1:4573", listening=True, port_free=False, pid=42)
    assert ok and "pid 42" in line
    ok, line = cli._engine_check("127.0.0.1:4573", listening=False, port_free=True, pid=None)
    assert ok is False and "engine not running" in line and "callcenter run" in line
    assert "./dev up" in line
    ok, line = cli._engine_check("127.0.0.1:4573", listening=False, port_free=True, pid=42)
    assert ok is False and "pid 42" in line
    ok, line = cli._engine_check("127.0.0.1:4573", listening=False, port_free=False, pid=None)
    assert ok is False and "another program" in line


def test_doctor_fails_when_the_engine_is_not_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings_at(tmp_path, _free_port())
    problems: list[str] = []

    def report(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    asyncio.run(cli._doctor_engine(settings, report))
    [line] = problems
    assert "engine not running" in line and "callcenter run" in line


def test_doctor_passes_the_engine_check_when_it_listens(
        tmp_path: Path, engine_port: int) -> None:
    settings = _settings_at(tmp_path, engine_port)
    seen: list[tuple[bool, str]] = []
    asyncio.run(cli._doctor_engine(settings, lambda ok, what: seen.append((ok, what))))
    assert seen and seen[0][0] is True


def test_doctor_exits_non_zero_when_the_engine_is_not_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_ami: type[StubAmi],
        capsys: pytest.CaptureFixture[str]) -> None:
    """Everything else doctor checks may pass; no engine is still a failure."""
    settings = _settings_at(tmp_path, _free_port())
    monkeypatch.setattr(cli, "_settings", lambda: settings)
    code = cli.main(["doctor"])
    out = capsys.readouterr().out
    assert code != 0
    fails = [line for line in out.splitlines() if "engine not running" in line]
    assert len(fails) == 1 and fails[0].startswith("[FAIL]"), out
