"""The SIP edge's pure parts: phone identities, the registration registry, the generated
transports, the local CA, and the relay's login tokens."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from callcenter.config import load_settings
from callcenter.phones.deskphone import render_register, split_sip
from callcenter.phones.identity import (
    PhoneIdentity,
    PhoneKind,
    astdb_values,
    extension_of,
    ha1,
    sorcery_objects,
)
from callcenter.phones.registry import PhoneChange, Registry
from callcenter.seats.sip_relay import RelayTokens
from callcenter.sip.certs import ServerCert, ensure_server_cert
from callcenter.sip.edge_conf import render_http, render_rtp, render_transports
from callcenter.sip.settings import SipSettings


def test_ha1_is_the_sip_digest_of_user_realm_and_secret() -> None:
    # RFC 2617's worked example: the value a registrar checks a phone's response against
    assert ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == \
        "939e7578ed9e3c518a452acee763bce9"


def test_a_desk_phone_gets_g711_and_its_digest_and_never_a_password() -> None:
    digest = ha1("3001", "callcenter", "s3cret")
    objects = sorcery_objects(PhoneIdentity("3001", PhoneKind.DESK, digest, "王强"), "callcenter",
                              30)
    assert objects["auth"] == {"auth_type": "digest", "username": "3001", "realm": "callcenter",
                               "md5_cred": digest}
    assert "password" not in objects["auth"]
    endpoint = objects["endpoint"]
    assert endpoint["allow"] == "ulaw,alaw" and "webrtc" not in endpoint
    assert endpoint["context"] == "from-agent" and endpoint["direct_media"] == "no"
    assert endpoint["callerid"] == '"王强" <3001>'
    assert objects["aor"]["max_contacts"] == "1"


def test_a_browser_phone_is_webrtc_and_locked_without_a_session_digest() -> None:
    locked = sorcery_objects(PhoneIdentity("1001", PhoneKind.BROWSER, None), "callcenter", 30)
    assert locked["endpoint"]["webrtc"] == "yes" and "opus" in locked["endpoint"]["allow"]
    again = sorcery_objects(PhoneIdentity("1001", PhoneKind.BROWSER, None), "callcenter", 30)
    # an unknown digest, a new one each time: nobody can register between logins
    assert locked["auth"]["md5_cred"] != again["auth"]["md5_cred"]


@pytest.mark.parametrize("name", ['A"; evil', "x\ny", "<script>"])
def test_caller_names_cannot_break_the_callerid_field(name: str) -> None:
    objects = sorcery_objects(PhoneIdentity("1001", PhoneKind.DESK, "0" * 32, name), "r", 0)
    callerid = objects["endpoint"]["callerid"]
    assert callerid.count('"') == 2 and "\n" not in callerid and "<" not in callerid[:-6]


@pytest.mark.parametrize("bad", ["1", "123456789", "10a1", "../x", ""])
def test_extensions_are_two_to_eight_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        sorcery_objects(PhoneIdentity(bad, PhoneKind.DESK, "0" * 32), "callcenter", 30)


def test_astdb_values_are_json_objects_per_family() -> None:
    values = astdb_values(PhoneIdentity("1001", PhoneKind.DESK, "a" * 32), "callcenter", 30)
    assert set(values) == {("cc_phones/endpoint", "1001"), ("cc_phones/aor", "1001"),
                           ("cc_phones/auth", "1001")}
    assert all(isinstance(json.loads(v), dict) for v in values.values())


def test_extension_of_reads_only_engine_made_endpoints() -> None:
    assert extension_of("PJSIP/1001") == "1001"
    assert extension_of("PJSIP/1001@trunk") is None
    assert extension_of("Local/1001@agent-answer") is None


def _status(aor: str, uri: str, status: str) -> dict[str, str]:
    return {"AOR": aor, "URI": uri, "ContactStatus": status}


def test_the_registry_says_when_a_phone_can_ring_and_why_it_stopped() -> None:
    reg = Registry()
    assert reg.feed(_status("1001", "sip:1001@a", "Created")) == PhoneChange("1001", True,
                                                                            "registered")
    assert reg.can_ring("1001")
    assert reg.feed(_status("1001", "sip:1001@a", "Reachable")) is None
    assert reg.feed(_status("1001", "sip:1001@a", "Unreachable")) == PhoneChange(
        "1001", False, "unreachable")
    assert reg.feed(_status("1001", "sip:1001@a", "Reachable")) == PhoneChange(
        "1001", True, "registered")
    assert reg.feed(_status("1001", "sip:1001@a", "Removed")) == PhoneChange(
        "1001", False, "unregistered")
    assert not reg.can_ring("1001") and reg.contacts == {}
    assert reg.feed({"AOR": "1001"}) is None  # incomplete events change nothing
    # silent first, then its registration ends too: told, as gone rather than silent
    reg.feed(_status("1001", "sip:1001@a", "Created"))
    assert reg.feed(_status("1001", "sip:1001@a", "Unreachable")) == PhoneChange(
        "1001", False, "unreachable")
    assert reg.feed(_status("1001", "sip:1001@a", "Removed")) == PhoneChange(
        "1001", False, "unregistered")
    assert reg.feed(_status("1001", "sip:1001@a", "Removed")) is None  # already gone


def test_a_snapshot_replaces_everything_and_reports_the_difference() -> None:
    reg = Registry()
    reg.feed(_status("1001", "sip:1001@a", "Created"))
    changes = reg.snapshot([
        {"ObjectName": "2001;@abc", "Uri": "sip:2001@b", "Status": "NonQualified"},
        {"ObjectName": "3001;@def", "Uri": "sip:3001@c", "Status": "Unreachable"},
    ])
    # 3001 is listed only silent (say, silent when the engine started): told, as unreachable
    assert changes == [PhoneChange("2001", True, "registered"),
                       PhoneChange("1001", False, "unregistered"),
                       PhoneChange("3001", False, "unreachable")]
    assert reg.can_ring("2001") and not reg.can_ring("3001") and reg.loaded
    # after a reconnect: a phone still listed but not answering is unreachable, not gone;
    # one that was silent and still is brings no change
    changes = reg.snapshot([
        {"ObjectName": "2001;@abc", "Uri": "sip:2001@b", "Status": "Unreachable"},
        {"ObjectName": "3001;@def", "Uri": "sip:3001@c", "Status": "Unreachable"},
    ])
    assert changes == [PhoneChange("2001", False, "unreachable")]
    assert changes[0].unreachable
    # a silent phone whose registration ended meanwhile is gone (as ``feed`` tells it)
    assert reg.snapshot([{"ObjectName": "2001;@abc", "Uri": "sip:2001@b",
                          "Status": "Unreachable"}]) == [
        PhoneChange("3001", False, "unregistered")]


def test_a_phone_with_a_silent_contact_left_is_unreachable_not_gone() -> None:
    reg = Registry()
    reg.feed(_status("1001", "sip:1001@a", "Created"))
    reg.feed(_status("1001", "sip:1001@b", "Unreachable"))
    assert reg.feed(_status("1001", "sip:1001@a", "Removed")) == PhoneChange(
        "1001", False, "unreachable")   # as a snapshot of the same contacts tells it


def test_a_contact_heard_silent_before_the_first_snapshot_is_told_by_it() -> None:
    """Events come in while the link logs in, before the contacts are read: a silent contact
    of a phone unknown till then brings no change, and the first snapshot tells it."""
    reg = Registry()
    assert reg.feed(_status("1001", "sip:1001@a", "Unreachable")) is None
    assert reg.snapshot([{"ObjectName": "1001;@a", "Uri": "sip:1001@a",
                          "Status": "Unreachable"}]) == [PhoneChange("1001", False, "unreachable")]
    assert reg.snapshot([{"ObjectName": "1001;@a", "Uri": "sip:1001@a",
                          "Status": "Unreachable"}]) == []   # told once


def test_the_registry_tells_where_a_phone_stands() -> None:
    reg = Registry()
    reg.snapshot([{"ObjectName": "2001;@abc", "Uri": "sip:2001@b", "Status": "Reachable"},
                  {"ObjectName": "3001;@def", "Uri": "sip:3001@c", "Status": "Unreachable"}])
    assert reg.state("2001") == PhoneChange("2001", True, "registered")
    assert reg.state("3001") == PhoneChange("3001", False, "unreachable")
    assert reg.state("4001") == PhoneChange("4001", False, "unregistered")


def test_transports_follow_the_settings_and_bind_nothing_public_by_default() -> None:
    text = render_transports(SipSettings())
    assert "bind = 127.0.0.1:5060" in text and "bind = 127.0.0.1:5061" in text
    assert "protocol = wss" in text and "cert_file = /etc/asterisk/keys/server.pem" in text
    nat = render_transports(SipSettings(bind="0.0.0.0", external_address="203.0.113.5",
                                        local_net=["10.0.0.0/8"]))
    assert "external_media_address = 203.0.113.5" in nat and "local_net = 10.0.0.0/8" in nat
    http = render_http(SipSettings(bind="10.1.2.3"))
    assert "bindaddr = 127.0.0.1" in http and "tlsbindaddr = 10.1.2.3:8089" in http
    rtp = render_rtp(SipSettings(rtp_start=20000, rtp_end=29999))
    assert "rtpstart = 20000" in rtp and "rtpend = 29999" in rtp
    assert "rtpend = 19999" in render_rtp(SipSettings())  # about 5000 legs by default
    with pytest.raises(ValueError, match="RTP range"):
        SipSettings(rtp_start=20000, rtp_end=20001)


@pytest.mark.parametrize("field,value", [("bind", "1.2.3.4\nbindaddr=0.0.0.0"),
                                         ("ice_servers", ["http://evil"]),
                                         ("local_net", ["not-a-net"]),
                                         ("realm", "a b")])
def test_sip_settings_refuse_what_could_not_go_into_a_config_file(field: str,
                                                                  value: object) -> None:
    with pytest.raises(ValueError):
        SipSettings.model_validate({field: value})


def test_the_local_ca_signs_a_server_certificate_for_the_names_and_keeps_keys_private(
        tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    made = ensure_server_cert(folder, ["127.0.0.1", "localhost", "10.77.0.1", "0.0.0.0"])
    cert = x509.load_pem_x509_certificate(made.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(made.ca.read_bytes())
    assert cert.issuer == ca.subject
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.77.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("0.0.0.0") not in names.get_values_for_type(x509.IPAddress)
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)
    for private in (folder / "ca.key", made.key):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    # Reused while current; remade when the names change.
    first = made.cert.read_bytes()
    assert ensure_server_cert(folder, ["127.0.0.1", "localhost", "10.77.0.1"]).cert.read_bytes() \
        == first
    assert ensure_server_cert(folder, ["127.0.0.1"]).cert.read_bytes() != first


def _strict_handshake(made: ServerCert) -> None:
    """A TLS handshake in memory, the client verifying as strictly as Python 3.13+ does."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(made.cert, made.key)
    client = ssl.create_default_context(cafile=str(made.ca))
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    assert c.version() is not None and s.version() is not None


def test_strict_verifiers_accept_the_local_ca_and_an_old_certificate_is_remade(
        tmp_path: Path) -> None:
    """Python 3.13+ (the container image's) verifies with VERIFY_X509_STRICT: certificates
    need key identifiers; one made before they were added is remade, not kept."""
    folder = tmp_path / "tls"
    made = ensure_server_cert(folder, ["127.0.0.1", "localhost"])
    _strict_handshake(made)
    cert = x509.load_pem_x509_certificate(made.cert.read_bytes())
    cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    # an old server certificate (no key identifiers) signed by the same CA: remade
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(made.ca.read_bytes())
    now = dt.datetime.now(dt.UTC)
    old = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(ca.subject)
           .public_key(cert.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now).not_valid_after(now + dt.timedelta(days=400))
           .add_extension(cert.extensions.get_extension_for_class(
               x509.SubjectAlternativeName).value, critical=False)
           .sign(ca_key, hashes.SHA256()))
    made.cert.write_bytes(old.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ssl.SSLError):
        _strict_handshake(made)
    _strict_handshake(ensure_server_cert(folder, ["127.0.0.1", "localhost"]))


def test_relay_tokens_belong_to_one_agent_until_revoked() -> None:
    tokens = RelayTokens()
    t1, t2 = tokens.issue("A1"), tokens.issue("A2")
    assert tokens.agent(t1) == "A1" and tokens.agent(t2) == "A2" and tokens.agent("x") is None
    tokens.revoke("A1")
    assert tokens.agent(t1) is None and tokens.agent(t2) == "A2"


def test_a_desk_phone_registration_scenario_answers_the_challenge() -> None:
    xml = render_register("3001", "pw", realm="callcenter", contact="127.0.0.3:5072",
                          stay_ms=1000)
    assert xml.count("REGISTER sip:callcenter") == 2
    assert "[authentication username=3001 password=pw]" in xml
    assert '<recv response="401" auth="true"/>' in xml and 'milliseconds="1000"' in xml
    with pytest.raises(ValueError):
        render_register("3001", "pw", realm="callcenter", contact="x", expires=99999)


def test_console_tls_and_sip_settings_load_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_SIP__BIND", "192.0.2.10")
    monkeypatch.setenv("CALLCENTER_CONSOLE__TLS", "true")
    settings = load_settings()
    assert settings.sip.bind == "192.0.2.10" and settings.console.tls
    cert, key = settings.tls_files()
    assert cert == settings.state_dir / "tls" / "server.pem" and key.name == "server.key"


def test_the_desk_phones_bridge_hands_sipp_one_message_at_a_time() -> None:
    """SIPp keeps only the first of two SIP messages in one TCP read (SIPp issue 675): the
    bridge frames the PBX's stream by Content-Length (compact ``l`` too), keep-alive CRLFs
    apart, and keeps an unfinished message for the next read."""
    ok = b"SIP/2.0 200 OK\r\nCSeq: 2 REGISTER\r\nContent-Length: 0\r\n\r\n"
    invite = b"INVITE sip:x SIP/2.0\r\nl: 5\r\n\r\nv=0\r\n"
    options = b"OPTIONS sip:x SIP/2.0\r\nContent-Length:  0\r\n\r\n"
    messages, rest = split_sip(ok + b"\r\n" + invite + options[:20])
    assert messages == [ok, b"\r\n", invite] and rest == options[:20]
    messages, rest = split_sip(rest + options[20:])
    assert messages == [options] and rest == b""
    # a body not all there yet waits
    assert split_sip(invite[:-2]) == ([], invite[:-2])
