"""The e-mail channel server: outbound notices and statements over SMTP (aiosmtplib), inbound
mail to the service address (an aiosmtpd listener on the event loop) as contacts for agents.

Outbound (``deliver``):

- ``to`` is checked strictly (``address_problem``): one bare ``local@domain`` address, a
  dot-atom ASCII local part, a domain of DNS labels (an internationalised domain is sent in its
  IDNA form); CR, LF, spaces, quotes, display names, address literals are refused, not
  repaired: ``DeliveryError(retriable=False)``.
- The text comes from ``templates.render_text``; ``statement`` and ``confirmations`` also get
  the document rendered by ``render`` as a PDF attachment
  (``statement-20261123-****0001.pdf``).
- Headers: UTF-8 subject, ``Message-ID: <message_id@from-domain>`` (a resend carries the same
  id, so it is recognisable as such), ``X-Callcenter-Message-Id``, ``X-Callcenter-Ref``,
  ``Auto-Submitted: auto-generated`` (except for an agent's ``note``).
- SMTP outcomes map to ``DeliveryError``: 4xx, connection refused or lost, timeouts ->
  retriable; 5xx (recipient or sender refused, data refused, authentication failed), a server
  without STARTTLS or AUTH when they are configured, an untrusted certificate -> not
  retriable. The reason quotes the server's reply.

Inbound (``inbound_port`` != 0): an aiosmtpd ``SMTP`` protocol served by
``loop.create_server`` on the plug-in's own loop (no thread). It accepts mail for the service
address only (others: ``550``), up to ``max_message_bytes`` (``552`` above), stores the raw
message as ``<mailbox_dir>/<time>-<contact_id>.eml`` and publishes an ``Inbound``; if
publishing fails the file is removed and the sender gets ``451`` (it will try again), so a
mail is never acknowledged and then lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.policy
import ipaddress
import logging
import os
import re
import ssl
import uuid
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, getaddresses
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar, Literal

import aiosmtplib
from aiosmtpd.smtp import SMTP as SMTPServerProtocol
from aiosmtpd.smtp import Envelope, Session
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from callcenter.channels import render
from callcenter.channels.messages import DeliveryState, Inbound, Outbound
from callcenter.channels.plugin import ChannelPlugin, Delivered, PublishInbound, ReportLater
from callcenter.channels.templates import BROKERAGE_FULL, DOCUMENT_TEMPLATES, render_text
from callcenter.errors import ConfigError, DeliveryError

log = logging.getLogger(__name__)

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_REASON_MAX = 400


# -- addresses ------------------------------------------------------------------------------

def address_problem(address: str) -> str | None:
    """What is wrong with ``address`` as a recipient, or None. Strict on purpose."""
    if not address:
        return "empty address"
    if len(address) > 254:
        return "address longer than 254 characters"
    if any(ord(c) < 32 or ord(c) == 127 or c.isspace() for c in address):
        return "address contains a control character or white space"
    if address.count("@") != 1:
        return "address must have exactly one @"
    local, domain = address.split("@")
    if not local or len(local) > 64:
        return "local part must be 1 to 64 characters"
    if not local.isascii():
        return "non-ASCII local part (SMTPUTF8) is not supported"
    if not _LOCAL.fullmatch(local):
        return "local part has characters or dots that are not allowed"
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None:
        return "domain is not a valid internationalised domain name"
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253:
        return "domain must be a full host name (like example.com)"
    if not all(_LABEL.fullmatch(label) for label in labels):
        return "domain has an invalid label"
    if labels[-1].isdigit():
        return "domain must not be an IP address"
    return None


def check_address(address: str) -> str:
    """The address as it is sent (domain in IDNA form), or ``DeliveryError(retriable=False)``."""
    problem = address_problem(address)
    if problem:
        raise DeliveryError(f"bad e-mail address {address[:80]!r}: {problem}", retriable=False)
    local, domain = address.split("@")
    return f"{local}@{_ascii_domain(domain)}"


def _ascii_domain(domain: str) -> str | None:
    if domain.isascii():
        return domain.lower()
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def _config_address(value: str) -> str:
    problem = address_problem(value)
    if problem:
        raise ValueError(f"{value!r}: {problem}")
    return value


# -- settings -------------------------------------------------------------------------------

class EmailSettings(BaseModel):
    """``[channels.email]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(587, ge=1, le=65535)
    #: starttls: plain connect then STARTTLS (required); tls: TLS from the start (port 465)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str
    from_name: str = BROKERAGE_FULL
    #: the name we give in EHLO; default: this host's FQDN (looked up off the loop)
    local_hostname: str | None = None
    #: seconds for the connection and for each SMTP command
    timeout: float = Field(30.0, gt=0)
    #: seconds for one whole delivery (render, connect, send)
    send_timeout: float = Field(180.0, gt=0)
    #: a CA bundle to trust for the SMTP server's certificate (default: the system's)
    ca_file: Path | None = None

    #: the inbound listener; port 0 = off
    inbound_host: str = "127.0.0.1"
    inbound_port: int = Field(0, ge=0, le=65535)
    #: the name in the listener's greeting
    inbound_hostname: str = "localhost"
    #: the address inbound mail must be for (default: from_address)
    service_address: str | None = None
    mailbox_dir: Path = Path("var/mailbox")
    max_message_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    #: offer STARTTLS on the listener with this certificate and key (both or neither)
    inbound_cert_file: Path | None = None
    inbound_key_file: Path | None = None

    @field_validator("from_address")
    @classmethod
    def _check_from(cls, value: str) -> str:
        return _config_address(value)

    @field_validator("service_address")
    @classmethod
    def _check_service(cls, value: str | None) -> str | None:
        return None if value is None else _config_address(value)

    @model_validator(mode="after")
    def _consistent(self) -> EmailSettings:
        if self.password is not None and not self.username:
            raise ValueError("password given without username")
        if self.username and self.security == "none" and not _is_loopback(self.smtp_host):
            raise ValueError("SMTP AUTH without TLS to a remote host would send the password "
                             "in clear: set security to starttls or tls")
        if (self.inbound_cert_file is None) != (self.inbound_key_file is None):
            raise ValueError("inbound_cert_file and inbound_key_file go together")
        return self

    @property
    def inbox_address(self) -> str:
        return self.service_address or self.from_address


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the plug-in ----------------------------------------------------------------------------

class EmailPlugin(ChannelPlugin):
    kind: ClassVar[str] = "email"
    Settings: ClassVar[type[BaseModel]] = EmailSettings

    def __init__(self, settings: BaseModel, report_later: ReportLater,
                 publish_inbound: PublishInbound) -> None:
        if not isinstance(settings, EmailSettings):
            raise ConfigError(f"EmailPlugin needs EmailSettings, not {type(settings).__name__}")
        super().__init__(settings, report_later, publish_inbound)
        self.cfg = settings
        self._tls: ssl.SSLContext | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[SMTPServerProtocol] = set()

    # lifecycle

    async def start(self) -> None:
        await asyncio.to_thread(render.check_fonts)
        if self.cfg.ca_file is not None:
            self._tls = await asyncio.to_thread(_client_context, self.cfg.ca_file)
        if self.cfg.inbound_port:
            await self._start_listener()

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = []
        for proto in list(self._connections):
            if proto.transport is not None:
                proto.transport.close()
            if proto._handler_coroutine is not None:
                tasks.append(proto._handler_coroutine)
        self._connections.clear()
        await server.wait_closed()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    @property
    def inbound_address(self) -> tuple[str, int] | None:
        """Where the listener listens (after ``start``), or None."""
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    # outbound

    async def deliver(self, message: Outbound) -> Delivered:
        try:
            async with asyncio.timeout(self.cfg.send_timeout):
                mail = await self.compose(message)
                reply = await self._send(mail)
        except TimeoutError as exc:
            raise DeliveryError(f"no answer within {self.cfg.send_timeout:g} s (SMTP "
                                f"{self.cfg.smtp_host}:{self.cfg.smtp_port})",
                                retriable=True) from exc
        return Delivered(DeliveryState.SENT,
                         {"smtp_reply": reply, "message_id": str(mail["Message-ID"])})

    async def compose(self, message: Outbound) -> EmailMessage:
        """The mail for ``message`` (rendering the document off the loop)."""
        to = check_address(message.to)
        text = render_text(message.template, message.lang, message.data,
                           account=message.account, ref=message.ref)
        mail = EmailMessage()
        try:
            mail["Subject"] = text.subject
            mail["From"] = Address(self.cfg.from_name, addr_spec=self.cfg.from_address)
            mail["To"] = Address(addr_spec=to)
            mail["Date"] = format_datetime(dt.datetime.now().astimezone())
            mail["Message-ID"] = message_id_header(message.message_id, self.cfg.from_address)
            mail["X-Callcenter-Message-Id"] = message.message_id
            if message.ref:
                mail["X-Callcenter-Ref"] = message.ref
            if message.template != "note":
                mail["Auto-Submitted"] = "auto-generated"
        except ValueError as exc:  # a header value the email package refuses (CR/LF ...)
            raise DeliveryError(f"cannot compose the mail: {exc}", retriable=False) from exc
        mail.set_content(text.body, charset="utf-8")
        if message.template in DOCUMENT_TEMPLATES:
            doc = render.statement_from_data(
                message.data, kind="statement" if message.template == "statement"
                else "confirmations", account=message.account)
            pdf = await asyncio.to_thread(_render_pdf, doc, message.lang)
            mail.add_attachment(pdf, maintype="application", subtype="pdf",
                                filename=f"{doc.filename_stem}.pdf")
        return mail

    async def _send(self, mail: EmailMessage) -> str:
        cfg = self.cfg
        try:
            errors, reply = await aiosmtplib.send(
                mail,
                hostname=cfg.smtp_host,
                port=cfg.smtp_port,
                username=cfg.username,
                password=cfg.password.get_secret_value() if cfg.password else None,
                use_tls=cfg.security == "tls",
                start_tls=cfg.security == "starttls",
                tls_context=self._tls,
                local_hostname=cfg.local_hostname,
                timeout=cfg.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise smtp_failure(exc) from exc
        if errors:  # some recipients refused, not all: we only have one, so not reached
            raise smtp_failure(aiosmtplib.SMTPRecipientsRefused([
                aiosmtplib.SMTPRecipientRefused(r.code, r.message, rcpt)
                for rcpt, r in errors.items()]))
        return f"250 {reply}".strip()

    # inbound

    async def _start_listener(self) -> None:
        cfg = self.cfg
        await asyncio.to_thread(cfg.mailbox_dir.mkdir, parents=True, exist_ok=True)
        tls = None
        if cfg.inbound_cert_file is not None and cfg.inbound_key_file is not None:
            tls = await asyncio.to_thread(_server_context, cfg.inbound_cert_file,
                                          cfg.inbound_key_file)
        loop = asyncio.get_running_loop()
        handler = _InboundHandler(self)

        def factory() -> SMTPServerProtocol:
            proto = _ListenerProtocol(
                handler, self._connections, loop=loop, hostname=cfg.inbound_hostname,
                ident="callcenter", data_size_limit=cfg.max_message_bytes,
                enable_SMTPUTF8=True, tls_context=tls, timeout=max(cfg.timeout, 60.0))
            return proto

        try:
            self._server = await loop.create_server(factory, cfg.inbound_host,
                                                    cfg.inbound_port)
        except OSError as exc:
            raise ConfigError(f"cannot listen for mail on {cfg.inbound_host}:"
                              f"{cfg.inbound_port}: {exc}") from exc
        log.info("listening for mail to %s on %s", cfg.inbox_address, self.inbound_address)

    async def receive(self, raw: bytes, mail_from: str) -> str:
        """Store and publish one inbound mail; returns the SMTP reply."""
        received = dt.datetime.now(dt.UTC)
        contact_id = uuid.uuid4().hex
        path = (self.cfg.mailbox_dir / f"{received:%Y%m%dT%H%M%S}-{contact_id}.eml").absolute()
        try:
            await asyncio.to_thread(_store, path, raw)
        except OSError:
            log.exception("could not store inbound mail %s", contact_id)
            return "451 4.3.0 Cannot store the message now, please try again later"
        sender, subject, text = await asyncio.to_thread(parse_inbound, raw, mail_from)
        inbound = Inbound(contact_id=contact_id, channel=self.kind, sender=sender,
                          subject=subject, text=text, attachment=str(path),
                          received_at=received)
        try:
            await self.publish_inbound(inbound)
        except Exception:
            log.exception("could not publish inbound mail %s; refusing it for now", contact_id)
            await asyncio.to_thread(path.unlink, missing_ok=True)
            return "451 4.3.0 Temporary failure, please try again later"
        return f"250 2.0.0 OK: accepted as {contact_id}"


def message_id_header(message_id: str, from_address: str) -> str:
    """``<message_id@domain>``: the same for every attempt of one message."""
    domain = _ascii_domain(from_address.rsplit("@", 1)[-1]) or "localhost"
    return f"<{message_id}@{domain}>"


def smtp_failure(exc: BaseException) -> DeliveryError:
    """An aiosmtplib (or socket) failure as a ``DeliveryError``: retriable or not, with the
    server's reply in the reason."""
    def reply(code: int, text: str) -> str:
        return f"{code} {' '.join(text.split())}"[:_REASON_MAX]

    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients
        codes = [r.code for r in refused]
        text = "; ".join(f"<{r.recipient}> {reply(r.code, r.message)}" for r in refused)
        return DeliveryError(f"recipient refused: {text}"[:_REASON_MAX],
                             retriable=all(400 <= c < 500 for c in codes))
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        what = {aiosmtplib.SMTPSenderRefused: "sender refused",
                aiosmtplib.SMTPDataError: "message refused",
                aiosmtplib.SMTPAuthenticationError: "authentication failed",
                aiosmtplib.SMTPHeloError: "greeting refused"}.get(type(exc), "SMTP error")
        return DeliveryError(f"{what}: {reply(exc.code, exc.message)}",
                             retriable=400 <= exc.code < 500)
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or (
            type(exc) is aiosmtplib.SMTPException and "not supported" in str(exc)):
        # no STARTTLS, no AUTH (aiosmtplib says so in a plain SMTPException), no SMTPUTF8
        return DeliveryError(f"server does not support what is configured: {exc}",
                             retriable=False)
    cert = exc if isinstance(exc, ssl.SSLCertVerificationError) else exc.__cause__
    if isinstance(cert, ssl.SSLCertVerificationError):
        return DeliveryError(f"TLS certificate not trusted: {cert.verify_message}",
                             retriable=False)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return DeliveryError(f"SMTP timeout: {exc}"[:_REASON_MAX], retriable=True)
    # connection refused / reset / lost, DNS failure, anything else transient
    return DeliveryError(f"SMTP connection failed: {exc}"[:_REASON_MAX], retriable=True)


def _render_pdf(doc: render.StatementData, lang: Literal["zh", "en"]) -> bytes:
    return render.render_document(doc, lang).pdf


def _client_context(ca_file: Path) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load ca_file {ca_file}: {exc}") from exc


def _server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the listener's certificate {cert}: {exc}") from exc
    return context


def _store(path: Path, raw: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        out.write(raw)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


# -- inbound parsing ------------------------------------------------------------------------

_SUBJECT_MAX = 500
_TEXT_MAX = 20000


def parse_inbound(raw: bytes, mail_from: str) -> tuple[str, str, str]:
    """(sender, subject, text) of a received mail, decoded. Text: the text/plain part if there
    is one, else the HTML part as text. A malformed mail yields what could be read."""
    sender, subject, text = mail_from, "", ""
    try:
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        pairs = getaddresses([str(v) for v in mail.get_all("From", [])])
        if pairs and pairs[0][1]:
            sender = pairs[0][1]
        subject = " ".join(str(mail.get("Subject", "")).split())
        body = mail.get_body(preferencelist=("plain", "html"))
        if body is not None:
            text = _part_text(body)
            if body.get_content_subtype() == "html":
                text = _html_text(text)
    except Exception:  # a mail that breaks the parser is still stored and shown
        log.warning("could not parse an inbound mail fully", exc_info=True)
    return sender[:254], subject[:_SUBJECT_MAX], text.strip()[:_TEXT_MAX]


def _part_text(part: MIMEPart) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


class _ListenerProtocol(SMTPServerProtocol):
    """aiosmtpd's SMTP protocol, remembering its live connections for ``close``."""

    def __init__(self, handler: Any, connections: set[SMTPServerProtocol], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._live = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._live.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._live.discard(self)
        super().connection_lost(error)


class _InboundHandler:
    """aiosmtpd handler hooks: only the service address, then store and publish."""

    def __init__(self, plugin: EmailPlugin) -> None:
        self.plugin = plugin
        self.inbox = plugin.cfg.inbox_address.casefold()

    async def handle_RCPT(self, server: SMTPServerProtocol, session: Session,
                          envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        if address.casefold() != self.inbox:
            return "550 5.1.1 Recipient not accepted here"
        if address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTPServerProtocol, session: Session,
                          envelope: Envelope) -> str:
        raw = envelope.original_content
        if not isinstance(raw, bytes):
            raw = b"" if raw is None else str(raw).encode("utf-8", "surrogateescape")
        return await self.plugin.receive(raw, envelope.mail_from or "")
