"""The trunks' generated Asterisk files (sip/trunks.py): PJSIP objects per trunk, the DIDs to
the hotline, [outbound] through the first trunk with its caller ID; secrets only in the 0640
PJSIP file. (Through the real Asterisk and a SIPp carrier: tests/integration/test_trunk.py.)"""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from callcenter.config import load_settings
from callcenter.errors import ConfigError
from callcenter.sip.settings import TrunkSettings
from callcenter.sip.trunks import DIALPLAN_FILE, PJSIP_FILE, render_dialplan, render_pjsip
from callcenter.telephony.pbx import Pbx

PASSWORD = "s3cret-Trunk pw!"
IDENTIFIED = TrunkSettings(name="telco", host="198.51.100.7:5070", match=["198.51.100.0/28"],
                           dids=["95500", "4008895500"], caller_id="4008895500")
DIGEST = TrunkSettings(name="backup", host="sip.example.cn", transport="tls",
                       username="cc01", password=SecretStr(PASSWORD), registration=True,
                       caller_id="+864008895500", number_format="e164", strip_digits=1,
                       add_prefix="9")


def sections(text: str) -> dict[str, dict[str, list[str]]]:
    """``{"name/type": {option: [values]}}`` of a PJSIP file, as Asterisk reads it."""
    found: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            name, current = line.strip("[]"), {}
            continue
        key, _, value = line.partition(" = ")
        # nothing Asterisk would cut: a bare ';' starts a comment, '\;' is a ';'
        assert ";" not in value.replace("\\;", "") and value == value.strip(), line
        value = value.replace("\\;", ";")
        current.setdefault(key, []).append(value)
        if key == "type":
            found[f"{name}/{value}"] = current
    return found


def contexts(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("["):
            lines = found.setdefault(line.strip("[]"), [])
        elif line and not line.startswith(";"):
            lines.append(line)
    return found


def test_a_trunk_identified_by_address() -> None:
    objs = sections(render_pjsip([IDENTIFIED]))
    assert set(objs) == {"telco/endpoint", "telco/aor", "telco.identify/identify"}
    endpoint = objs["telco/endpoint"]
    assert endpoint["context"] == ["from-trunk-telco"]
    assert endpoint["transport"] == ["transport-udp"]
    # the From user is the caller ID [outbound] sets, not a fixed one
    assert "from_user" not in endpoint and endpoint["send_pai"] == ["no"]
    assert endpoint["aors"] == ["telco"]
    assert endpoint["trust_id_inbound"] == ["no"] and "outbound_auth" not in endpoint
    assert objs["telco/aor"]["contact"] == ["sip:198.51.100.7:5070"]
    assert objs["telco.identify/identify"]["match"] == ["198.51.100.0/28"]


def test_a_trunk_with_digest_auth_and_registration() -> None:
    objs = sections(render_pjsip([DIGEST]))
    assert set(objs) == {"backup/endpoint", "backup/aor", "backup.auth/auth",
                         "backup.reg/registration"}
    assert objs["backup/endpoint"]["outbound_auth"] == ["backup.auth"]
    assert objs["backup/endpoint"]["transport"] == ["transport-tls"]
    assert objs["backup.auth/auth"]["password"] == [PASSWORD]
    reg = objs["backup.reg/registration"]
    assert objs["backup/aor"]["contact"] == ["sip:sip.example.cn;transport=tls"]
    assert reg["server_uri"] == ["sip:sip.example.cn;transport=tls"]
    assert reg["client_uri"] == ["sip:cc01@sip.example.cn;transport=tls"]
    assert (reg["line"], reg["endpoint"]) == (["yes"], ["backup"])


def test_a_carrier_that_wants_its_account_in_from_gets_the_caller_id_as_pai() -> None:
    account = IDENTIFIED.model_copy(update={"from_user": "acct-77"})
    endpoint = sections(render_pjsip([account]))["telco/endpoint"]
    assert (endpoint["from_user"], endpoint["send_pai"]) == (["acct-77"], ["yes"])
    with pytest.raises(ValidationError):
        TrunkSettings(name="t", host="h", match=["10.0.0.1"], caller_id="1234",
                      from_user="a;b")


def test_the_dids_reach_the_hotline_and_nothing_else() -> None:
    ctx = contexts(render_dialplan([IDENTIFIED, DIGEST], simulated=False))
    assert ctx["from-trunk-telco"] == [
        "exten => 95500,1,Goto(hotline,9500,1)", "exten => 4008895500,1,Goto(hotline,9500,1)",
        "exten => _X!,1,Hangup(1)", "exten => i,1,Hangup(1)"]
    assert ctx["from-trunk-backup"] == ["exten => _X!,1,Hangup(1)", "exten => i,1,Hangup(1)"]


def test_outbound_goes_through_the_first_trunk_with_its_caller_id_then_the_next() -> None:
    lines = contexts(render_dialplan([IDENTIFIED, DIGEST], simulated=True))["outbound"]
    assert lines[0] == 'exten => _X.,1,GotoIf($[${REGEX("^[0-9]+$" ${EXTEN})}]?:refuse)'
    dials = [line for line in lines if ",Dial(" in line]
    assert dials == [" same => n,Dial(PJSIP/${CC_OUT}@telco)",
                     " same => n,Dial(PJSIP/9${CC_OUT:1}@backup)"]
    assert " same => n(trunk0),Set(CALLERID(num)=4008895500)" in lines
    assert " same => n(trunk1),Set(CALLERID(num)=+864008895500)" in lines
    # a dialer call may show the trunk's other numbers (its DIDs), nothing else
    shown = [line for line in lines if "CC_SHOW_CID" in line]
    assert shown == [' same => n,ExecIf($[${REGEX("^(95500)$" ${FILTER(0-9,${CC_SHOW_CID})})}]'
                     '?Set(CALLERID(num)=${FILTER(0-9,${CC_SHOW_CID})}))']
    assert lines.index(shown[0]) == lines.index(
        " same => n(trunk0),Set(CALLERID(num)=4008895500)") + 1
    failover = next(line for line in lines if "DIALSTATUS" in line)
    assert "CHANUNAVAIL" in failover and failover.endswith("?trunk1:end)")
    assert lines.index(failover) < lines.index(dials[1])
    assert not any("outbound-sim" in line for line in lines)  # a trunk wins over the sim
    assert lines[-1] == " same => n(refuse),Hangup(1)"


def test_a_trunk_not_for_outbound_is_skipped() -> None:
    inbound_only = IDENTIFIED.model_copy(update={"outbound": False})
    lines = contexts(render_dialplan([inbound_only, DIGEST], simulated=False))["outbound"]
    assert [line for line in lines if ",Dial(" in line] == [
        " same => n,Dial(PJSIP/9${CC_OUT:1}@backup)"]


def test_without_a_trunk_the_sandbox_simulates_and_a_site_refuses() -> None:
    sim = contexts(render_dialplan([], simulated=True))["outbound"]
    assert " same => n,Goto(outbound-sim,${EXTEN},1)" in sim
    site = contexts(render_dialplan([], simulated=False))["outbound"]
    assert not any("outbound-sim" in line or "Dial(" in line for line in site)
    assert " same => n,Hangup(21)" in site
    assert contexts(render_pjsip([])) == {}


@pytest.mark.parametrize("change", [
    {"name": "Telco"}, {"name": "1001"}, {"name": "a;b"}, {"name": "x" * 33},
    {"host": "sip.example.cn:0"}, {"host": "sip.example.cn:70000"}, {"host": "a b"},
    {"host": "sip.example.cn\n[evil]"}, {"match": ["not-an-address"]},
    {"dids": ["95500", "95500"]}, {"dids": ["9550;0"]}, {"caller_id": "400 889"},
    {"caller_id": "4008895500\ntype=endpoint"}, {"add_prefix": "9;"}, {"from_domain": "a b"},
    {"transport": "ws"}, {"username": "a;b"},
])
def test_values_that_could_break_the_generated_files_are_refused(
        change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TrunkSettings.model_validate(IDENTIFIED.model_dump() | change)


@pytest.mark.parametrize(("change", "rule"), [
    ({"username": "cc01"}, "both"),                                  # username, no password
    ({"password": "pw-only"}, "both"),
    ({"match": []}, "match"),                                        # no way to know it
    ({"registration": True}, "registration"),
    ({"password": "pw;x", "username": "u"}, "password"),
    ({"password": "pw\nx", "username": "u"}, "password"),
    ({"password": " pw", "username": "u"}, "password"),
    ({"password": "", "username": "u"}, "password"),
    ({"password": "pw\u00e9", "username": "u"}, "password"),
    ({"password": "p" * 129, "username": "u"}, "password"),
])
def test_auth_is_checked_when_the_files_are_made_without_echoing_the_password(
        change: dict[str, object], rule: str) -> None:
    trunk = TrunkSettings.model_validate(IDENTIFIED.model_dump() | change)
    renders: tuple[Callable[[], str], ...] = (
        lambda: render_pjsip([trunk]), lambda: render_dialplan([trunk], simulated=False))
    for render in renders:
        with pytest.raises(ConfigError, match=rule) as refused:
            render()
        assert refused.value.__cause__ is None and refused.value.__context__ is None
        secret = str(change.get("password", "-"))
        assert secret.strip() == "" or secret not in str(refused.value)


def test_clashing_names_and_dids_are_refused() -> None:
    with pytest.raises(ConfigError, match="same name"):
        render_pjsip([IDENTIFIED, DIGEST.model_copy(update={"name": "telco"})])
    with pytest.raises(ConfigError, match="DID"):
        render_dialplan([IDENTIFIED, DIGEST.model_copy(update={"dids": ["95500"]})],
                        simulated=False)
    carrier = IDENTIFIED.model_copy(update={"name": "carrier"})
    with pytest.raises(ConfigError, match="sandbox"):
        render_pjsip([carrier], simulated=True)
    assert "[carrier]" in render_pjsip([carrier], simulated=False)  # a site may call it so


def test_the_password_never_prints() -> None:
    assert PASSWORD not in repr(DIGEST) and PASSWORD not in str(DIGEST)
    assert PASSWORD not in DIGEST.model_dump_json()
    assert PASSWORD not in render_dialplan([DIGEST], simulated=False)


def test_pbx_installs_both_files_and_only_the_pjsip_one_holds_the_secret(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "root"
    settings = load_settings(state_dir=tmp_path / "state",
                             pbx={"root": root, "sounds_dir": tmp_path / "no-sounds"},
                             trunks=[IDENTIFIED.model_dump(), DIGEST.model_dump()
                                     | {"password": PASSWORD}])
    with caplog.at_level(logging.DEBUG):
        Pbx(settings).install_config()
    etc = root / "etc" / "asterisk"
    pjsip, dialplan = etc / PJSIP_FILE, etc / DIALPLAN_FILE
    assert stat.S_IMODE(pjsip.stat().st_mode) == 0o640
    assert stat.S_IMODE(dialplan.stat().st_mode) == 0o640
    assert PASSWORD in pjsip.read_text()
    holders = [p.name for p in etc.rglob("*") if p.is_file()
               and PASSWORD.encode() in p.read_bytes()]
    assert holders == [PJSIP_FILE]
    assert PASSWORD not in caplog.text
    # the static files include the generated ones, and [outbound] is defined once
    assert '#tryinclude "extensions_trunks.conf"' in (etc / "extensions.conf").read_text()
    assert '#tryinclude "pjsip_trunks.conf"' in (etc / "pjsip.conf").read_text()
    everything = "\n".join(p.read_text() for p in etc.glob("extensions*.conf"))
    assert len(re.findall(r"^\[outbound\]", everything, re.M)) == 1
    assert len(re.findall(r"^\[outbound-sim\]", everything, re.M)) == 1


def test_a_sites_pbx_without_trunks_refuses_outbound_calls(tmp_path: Path) -> None:
    root = tmp_path / "root"
    settings = load_settings(state_dir=tmp_path / "state",
                             pbx={"root": root, "sounds_dir": tmp_path / "no-sounds",
                                  "simulated_parties": False})
    Pbx(settings).install_config()
    etc = root / "etc" / "asterisk"
    everything = "\n".join(p.read_text() for p in etc.glob("extensions*.conf"))
    assert not re.search(r"^\[outbound-sim\]", everything, re.M)  # no simulated customer
    assert "Goto(outbound-sim" not in everything
    assert "Hangup(21)" in (etc / DIALPLAN_FILE).read_text()
