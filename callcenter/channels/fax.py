"""The fax channel server: statements and confirmations sent as G3 TIFF by Asterisk's ``SendFAX``
(spandsp) on an originated call, and faxes received on the fax number turned into PDF.

Sending: the document is rendered (``render.py``: the same PDF as e-mail gets, rasterised to
a G3 TIFF) into Asterisk's fax spool, then
``Local/<number>@fax-dial`` is originated into ``[fax-send]``; the dialplan reports the result
(status, pages, error) as a ``CallCenterFaxSent`` UserEvent. Busy, no answer and a failed
transfer are retriable (the runner tries again with backoff); a malformed number is not.

Receiving: ``[fax-in]`` (the fax number, 9600 in the sandbox) runs ``ReceiveFAX`` and reports
``CallCenterFaxIn``; the TIFF becomes a PDF in ``mailbox_dir`` and an ``Inbound`` contact on the
bus, which the engine shows to agents.

This server talks AMI with the engine's AMI user (its secret file); Asterisk only ever sees a
checked number, a file name we made, and the message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field, SecretStr

from callcenter.channels import render
from callcenter.channels.messages import DeliveryState, Inbound, Outbound
from callcenter.channels.plugin import ChannelPlugin, Delivered, PublishInbound, ReportLater
from callcenter.config import AmiSettings, load_settings
from callcenter.errors import AmiActionError, CallCenterError, DeliveryError, TelephonyError
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import AmiEvent, OtherEvent

log = logging.getLogger(__name__)

FAX_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
#: OriginateResponse reasons (Asterisk's AST_CONTROL_*): 3 no answer, 5 busy, 8 congestion
_RETRIABLE_REASONS = {"0": "no such number or channel", "1": "hung up", "3": "no answer",
                      "5": "busy", "8": "congestion"}


class FaxSettings(BaseModel):
    ami: AmiSettings = AmiSettings()
    #: the AMI secret (default: the engine's, from its state directory)
    ami_secret_file: Path | None = None
    #: Asterisk's file system as seen from here: the sandbox's chroot, or "/" for a system PBX
    pbx_root: Path = Path("/var/cache/callcenter/pbx-root")
    spool: str = "/var/spool/asterisk/fax"
    dial_context: str = Field("fax-dial", pattern=r"^[a-z0-9_-]+$")
    answer_timeout_s: float = Field(45.0, gt=0)
    #: a whole transfer (training and pages) must end within this
    transfer_timeout_s: float = Field(600.0, gt=0)
    #: received faxes land here as PDF
    mailbox_dir: Path = Path.home() / ".local" / "state" / "callcenter" / "fax-mailbox"


class FaxPlugin(ChannelPlugin):
    kind: ClassVar[str] = "fax"
    Settings: ClassVar[type[BaseModel]] = FaxSettings

    def __init__(self, settings: BaseModel, report_later: ReportLater,
                 publish_inbound: PublishInbound) -> None:
        super().__init__(settings, report_later, publish_inbound)
        assert isinstance(settings, FaxSettings)
        self.cfg = settings
        self.ami: AmiClient | None = None
        self._sent: dict[str, asyncio.Future[dict[str, str]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(render.check_fonts)  # a missing font package fails here, not later
        secret = await asyncio.to_thread(self._secret)  # may read settings and a file
        self.ami = AmiClient(self.cfg.ami, secret)
        self.ami.add_handler(self._on_event)
        await self.ami.start()
        await asyncio.to_thread(self.cfg.mailbox_dir.mkdir, parents=True, exist_ok=True)

    def _secret(self) -> SecretStr:
        if self.cfg.ami.secret is not None:
            return self.cfg.ami.secret
        path = self.cfg.ami_secret_file or load_settings().ami_secret_file
        return SecretStr(path.read_text(encoding="ascii").strip())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ami is not None:
            await self.ami.close()
            self.ami = None

    # -- sending ---------------------------------------------------------------------------------

    async def deliver(self, message: Outbound) -> Delivered:
        number = message.to.replace(" ", "").replace("-", "")
        if not FAX_NUMBER.fullmatch(number):
            raise DeliveryError(f"not a fax number: {message.to!r}", retriable=False)
        if self.ami is None:
            raise DeliveryError("the fax server is not connected to Asterisk", retriable=True)
        # Rendering takes a few hundred ms of CPU: off the loop. The TIFF is the PDF rasterised.
        document = await asyncio.to_thread(render.message_document, message)
        tiff = await asyncio.to_thread(render.to_g3_tiff, document.pdf)
        name = f"{message.message_id}.tif"
        await asyncio.to_thread(self._spool_write, name, tiff)
        waiter: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._sent[message.message_id] = waiter
        try:
            try:
                await self.ami.originate(
                    wait_s=self.cfg.answer_timeout_s + 10,
                    Channel=f"Local/{number.lstrip('+')}@{self.cfg.dial_context}",
                    Context="fax-send", Exten="s", Priority="1",
                    Timeout=str(int(self.cfg.answer_timeout_s * 1000)),
                    Variable=[f"FAXFILE={self.cfg.spool}/out/{name}",
                              f"CC_FAXID={message.message_id}"])
            except AmiActionError as exc:
                reason = exc.message.split(" ", 1)[0]
                why = _RETRIABLE_REASONS.get(reason, f"call not placed ({exc.message})")
                raise DeliveryError(f"fax to {number}: {why}", retriable=True) from exc
            except TelephonyError as exc:
                raise DeliveryError(f"fax: Asterisk unreachable: {exc}", retriable=True) from exc
            try:
                async with asyncio.timeout(self.cfg.transfer_timeout_s):
                    result = await waiter
            except TimeoutError as exc:
                raise DeliveryError("fax: no result from Asterisk in time", retriable=True) \
                    from exc
        finally:
            self._sent.pop(message.message_id, None)
            await asyncio.to_thread(self._spool_remove, name)
        pages_sent = int(result.get("Pages") or 0)
        if result.get("Status") != "SUCCESS":
            error = result.get("Error") or result.get("Status") or "unknown"
            raise DeliveryError(f"fax to {number} failed: {error} after {pages_sent} page(s)",
                                retriable=True)
        if pages_sent != document.pages:
            raise DeliveryError(f"fax to {number}: {pages_sent} of {document.pages} pages went",
                                retriable=True)
        # The far end confirmed every page (T.30): that is delivery, not just sending.
        return Delivered(DeliveryState.DELIVERED, {"pages": pages_sent, "number": number})

    def _spool_path(self, name: str, sub: str = "out") -> Path:
        return self.cfg.pbx_root / self.cfg.spool.lstrip("/") / sub / name

    def _spool_write(self, name: str, data: bytes) -> None:
        path = self._spool_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        stat = path.parent.stat()  # Asterisk (its own user) must be able to read it
        with contextlib.suppress(PermissionError):
            os.chown(tmp, stat.st_uid, stat.st_gid)
        tmp.replace(path)

    def _spool_remove(self, name: str) -> None:
        self._spool_path(name).unlink(missing_ok=True)

    # -- events ----------------------------------------------------------------------------------

    def _on_event(self, event: AmiEvent) -> None:
        if not isinstance(event, OtherEvent) or event.name != "UserEvent":
            return
        h = event.headers
        kind = h.get("UserEvent", "")
        if kind == "CallCenterFaxSent":
            waiter = self._sent.get(h.get("FaxId", ""))
            if waiter is not None and not waiter.done():
                waiter.set_result(dict(h))
        elif kind == "CallCenterFaxIn":
            task = asyncio.get_running_loop().create_task(self._received(dict(h)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _received(self, h: dict[str, str]) -> None:
        fax_id = re.sub(r"[^A-Za-z0-9_.-]", "_", h.get("FaxId", ""))
        if h.get("Status") != "SUCCESS" or not fax_id:
            log.warning("inbound fax %s not received: %s %s", fax_id or "?",
                        h.get("Status", "?"), h.get("Error", ""))
            return
        try:
            tiff_path = self._spool_path(f"{fax_id}.tif", "in")
            tiff = await asyncio.to_thread(tiff_path.read_bytes)
            pdf = await asyncio.to_thread(render.pdf_from_tiff, tiff)
            target = self.cfg.mailbox_dir / f"fax-{fax_id}.pdf"
            await asyncio.to_thread(target.write_bytes, pdf)
            sender = h.get("Remote") or h.get("Caller") or "unknown"
            await self.publish_inbound(Inbound(
                contact_id=f"fax-{fax_id}", channel="fax", sender=sender[:254],
                subject=f"Fax from {sender}", attachment=str(target),
                pages=int(h.get("Pages") or 0), received_at=dt.datetime.now(dt.UTC)))
            log.info("inbound fax %s: %s page(s) from %s -> %s", fax_id, h.get("Pages"),
                     sender, target)
        except (OSError, ValueError, CallCenterError) as exc:
            log.error("inbound fax %s could not be stored: %s", fax_id, exc)
