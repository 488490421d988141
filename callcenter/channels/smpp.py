"""SMPP 3.4, sans-IO: the PDU codec, the session state machine, text segmentation (UCS-2 with
concatenation headers), reassembly and delivery-receipt parsing. No sockets, no loop: the SMS
plug-in (``sms.py``) and the SMSC simulator (``smsc_sim.py``) both drive this same core.

Why our own and not aiosmpplib (checked: 0.7.4, the latest release)
------------------------------------------------------------------
aiosmpplib is asyncio-native and does UCS-2 with UDH concatenation, but it did not fit:

- it is a queue-and-hooks engine (``broker.enqueue`` + ``Hook.received``): ``deliver()`` could
  not simply await the SMSC's answer to *its* message without a bridge of futures keyed on
  ``log_id``; and its ESME only, so the simulator would still need a codec of its own;
- its receipt correlation (``SimpleCorrelator``) persists by rewriting a whole JSON file
  synchronously on every put/delete, inside the event loop, stores ``time.monotonic()`` stamps
  that mean nothing after a restart, and swallows every error when loading that file (a corrupt
  file silently loses every pending receipt);
- its wheel ships no ``py.typed`` marker, so under our mypy strict it is an untyped import;
- its SAR segmentation path reads a variable only set in the UDH branch (``encoding`` in
  ``ESME._dequeue_messages``): a long message without the UDHI flag raises.

The part of SMPP we need is small: the PDUs below, a 16-byte header, C-octet strings and TLVs.

What is implemented
-------------------
PDUs: ``bind_transceiver`` (+resp), ``submit_sm`` (+resp), ``deliver_sm`` (+resp),
``enquire_link`` (+resp), ``unbind`` (+resp), ``generic_nack``. Header: command_length,
command_id, command_status, sequence_number (big-endian 32-bit each).

Text: anything non-ASCII is sent as UCS-2 big-endian (``data_coding`` 0x08; characters outside
the BMP, e.g. emoji, as UTF-16 surrogate pairs, which handsets decode). One part holds 70 UCS-2
units; a longer text is split into parts of at most 67 units, each starting with the UDH
``05 00 03 ref total seq`` (``esm_class`` 0x40), and a surrogate pair is never cut between two
parts. Pure-ASCII text goes as ``data_coding`` 0 in 8-bit octets: 140 per single part, 134 per
concatenated part (conservative: an SMSC packing GSM-7 would allow 160/153).

Receipts: a ``deliver_sm`` whose ``esm_class`` message type is 0x04 carries
``id:... sub:... dlvrd:... submit date:... done date:... stat:DELIVRD err:... text:...`` in its
short message (SMPP 3.4 appendix B); the ``receipted_message_id`` and ``message_state`` TLVs
take precedence when present.

The session (``SmppConnection``) is a table-driven state machine in the h11 manner: ``send``
refuses a PDU the state does not allow (our bug: ``SmppUsageError``); a received request the
state does not allow is answered for us with ``ESME_RINVBNDSTS``, an unknown command with a
``generic_nack``; ``enquire_link`` and ``unbind`` are answered automatically; a broken frame is
``SmppProtocolError`` (the peer's fault; the connection must be dropped).
"""

from __future__ import annotations

import enum
import re
import struct
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from typing import ClassVar, Final, Self

from callcenter.errors import DeliveryError, SmppProtocolError, SmppUsageError


class CommandId(enum.IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


RESPONSE_BIT: Final = 0x80000000


class Status(enum.IntEnum):
    """command_status values of SMPP 3.4 (section 5.1.3)."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF


#: statuses after which the same submit may succeed later: throttling, a full queue at the SMSC,
#: and the "temporary application error" the spec defines for exactly that
RETRIABLE_STATUSES: Final = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL,
                                       Status.ESME_RX_T_APPN})


def status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"status 0x{status:08X}"


def submit_error(status: int, *, part: int = 1, parts: int = 1) -> DeliveryError:
    """The ``DeliveryError`` for a ``submit_sm_resp`` that was not ``ESME_ROK``."""
    where = f" (part {part}/{parts})" if parts > 1 else ""
    retriable = status in RETRIABLE_STATUSES
    return DeliveryError(f"SMSC refused submit_sm: {status_name(status)}{where}",
                         retriable=retriable)


# -- TLVs (optional parameters) ------------------------------------------------------------------

class Tag(enum.IntEnum):
    RECEIPTED_MESSAGE_ID = 0x001E
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427
    NETWORK_ERROR_CODE = 0x0423


Tlvs = tuple[tuple[int, bytes], ...]


def tlv(tlvs: Tlvs, tag: int) -> bytes | None:
    for t, value in tlvs:
        if t == tag:
            return value
    return None


# -- PDUs ----------------------------------------------------------------------------------------

HEADER: Final = struct.Struct("!IIII")
#: refuse frames beyond this: SMPP PDUs are small (a short message is at most 254 octets)
MAX_PDU_LENGTH: Final = 64 * 1024
INTERFACE_VERSION: Final = 0x34


class _BodyError(ValueError):
    """A PDU body could not be decoded (the header was fine)."""


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def c_str(self, value: str, max_len: int, name: str) -> None:
        """A C-octet string of at most ``max_len`` octets including the terminating NUL."""
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError as exc:
            raise SmppUsageError(f"{name} must be ASCII") from exc
        if len(raw) >= max_len or b"\x00" in raw:
            raise SmppUsageError(f"{name} is longer than {max_len - 1} octets (or has a NUL)")
        self.buf += raw + b"\x00"

    def u8(self, value: int, name: str) -> None:
        if not 0 <= value <= 0xFF:
            raise SmppUsageError(f"{name} does not fit in one octet: {value}")
        self.buf.append(value)

    def octets(self, value: bytes) -> None:
        self.buf += value

    def tlvs(self, tlvs: Tlvs) -> None:
        for tag, value in tlvs:
            if not 0 <= tag <= 0xFFFF or len(value) > 0xFFFF:
                raise SmppUsageError(f"TLV 0x{tag:04X} does not fit")
            self.buf += struct.pack("!HH", tag, len(value)) + value


class _Reader:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def c_str(self, max_len: int, name: str) -> str:
        end = self.body.find(b"\x00", self.pos, self.pos + max_len)
        if end < 0:
            raise _BodyError(f"{name}: no NUL within {max_len} octets")
        raw = self.body[self.pos:end]
        self.pos = end + 1
        return raw.decode("latin-1")

    def u8(self, name: str) -> int:
        if self.pos >= len(self.body):
            raise _BodyError(f"{name}: body too short")
        value = self.body[self.pos]
        self.pos += 1
        return value

    def octets(self, n: int, name: str) -> bytes:
        if self.pos + n > len(self.body):
            raise _BodyError(f"{name}: body too short")
        value = self.body[self.pos:self.pos + n]
        self.pos += n
        return value

    def at_end(self) -> bool:
        return self.pos >= len(self.body)

    def tlvs(self) -> Tlvs:
        out: list[tuple[int, bytes]] = []
        while not self.at_end():
            head = self.octets(4, "TLV header")
            tag, length = struct.unpack("!HH", head)
            out.append((tag, self.octets(length, f"TLV 0x{tag:04X}")))
        return tuple(out)


@dataclass(frozen=True, kw_only=True)
class Pdu:
    """Base of every PDU: the header's status and sequence; the command id is the class's."""

    command_id: ClassVar[CommandId]
    #: the response class of a request (None for responses and generic_nack)
    response: ClassVar[type[Pdu] | None] = None

    sequence: int = 0
    status: int = 0

    def encode_body(self, w: _Writer) -> None:
        """Header-only PDUs have no body."""

    @classmethod
    def decode_body(cls, r: _Reader, *, sequence: int, status: int) -> Self:
        return cls(sequence=sequence, status=status)

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    @property
    def name(self) -> str:
        return self.command_id.name.lower()


@dataclass(frozen=True, kw_only=True)
class GenericNack(Pdu):
    command_id: ClassVar[CommandId] = CommandId.GENERIC_NACK


@dataclass(frozen=True, kw_only=True)
class BindTransceiverResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER_RESP
    system_id: str = ""
    tlvs: Tlvs = ()

    def encode_body(self, w: _Writer) -> None:
        w.c_str(self.system_id, 16, "system_id")
        w.tlvs(self.tlvs)

    @classmethod
    def decode_body(cls, r: _Reader, *, sequence: int, status: int) -> Self:
        if r.at_end():  # an error answer may come without a body
            return cls(sequence=sequence, status=status)
        return cls(sequence=sequence, status=status, system_id=r.c_str(16, "system_id"),
                   tlvs=r.tlvs())


@dataclass(frozen=True, kw_only=True)
class BindTransceiver(Pdu):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER
    response: ClassVar[type[Pdu] | None] = BindTransceiverResp
    system_id: str = ""
    password: str = field(default="", repr=False)
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""

    def encode_body(self, w: _Writer) -> None:
        w.c_str(self.system_id, 16, "system_id")
        w.c_str(self.password, 9, "password")
        w.c_str(self.system_type, 13, "system_type")
        w.u8(self.interface_version, "interface_version")
        w.u8(self.addr_ton, "addr_ton")
        w.u8(self.addr_npi, "addr_npi")
        w.c_str(self.address_range, 41, "address_range")

    @classmethod
    def decode_body(cls, r: _Reader, *, sequence: int, status: int) -> Self:
        return cls(sequence=sequence, status=status, system_id=r.c_str(16, "system_id"),
                   password=r.c_str(9, "password"), system_type=r.c_str(13, "system_type"),
                   interface_version=r.u8("interface_version"), addr_ton=r.u8("addr_ton"),
                   addr_npi=r.u8("addr_npi"), address_range=r.c_str(41, "address_range"))


@dataclass(frozen=True, kw_only=True)
class _MessageIdResp(Pdu):
    message_id: str = ""

    def encode_body(self, w: _Writer) -> None:
        w.c_str(self.message_id, 65, "message_id")

    @classmethod
    def decode_body(cls, r: _Reader, *, sequence: int, status: int) -> Self:
        if r.at_end():  # not returned with an error status (3.4, 4.4.2)
            return cls(sequence=sequence, status=status)
        return cls(sequence=sequence, status=status, message_id=r.c_str(65, "message_id"))


@dataclass(frozen=True, kw_only=True)
class SubmitSmResp(_MessageIdResp):
    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM_RESP


@dataclass(frozen=True, kw_only=True)
class DeliverSmResp(_MessageIdResp):
    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM_RESP


@dataclass(frozen=True, kw_only=True)
class _ShortMessage(Pdu):
    """The body shared by submit_sm and deliver_sm (3.4, 4.4.1 and 4.6.1)."""

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: Tlvs = ()

    def encode_body(self, w: _Writer) -> None:
        w.c_str(self.service_type, 6, "service_type")
        w.u8(self.source_addr_ton, "source_addr_ton")
        w.u8(self.source_addr_npi, "source_addr_npi")
        w.c_str(self.source_addr, 21, "source_addr")
        w.u8(self.dest_addr_ton, "dest_addr_ton")
        w.u8(self.dest_addr_npi, "dest_addr_npi")
        w.c_str(self.destination_addr, 21, "destination_addr")
        w.u8(self.esm_class, "esm_class")
        w.u8(self.protocol_id, "protocol_id")
        w.u8(self.priority_flag, "priority_flag")
        w.c_str(self.schedule_delivery_time, 17, "schedule_delivery_time")
        w.c_str(self.validity_period, 17, "validity_period")
        w.u8(self.registered_delivery, "registered_delivery")
        w.u8(self.replace_if_present_flag, "replace_if_present_flag")
        w.u8(self.data_coding, "data_coding")
        w.u8(self.sm_default_msg_id, "sm_default_msg_id")
        if len(self.short_message) > 254:
            raise SmppUsageError("short_message is longer than 254 octets")
        w.u8(len(self.short_message), "sm_length")
        w.octets(self.short_message)
        w.tlvs(self.tlvs)

    @classmethod
    def decode_body(cls, r: _Reader, *, sequence: int, status: int) -> Self:
        service_type = r.c_str(6, "service_type")
        source_addr_ton = r.u8("source_addr_ton")
        source_addr_npi = r.u8("source_addr_npi")
        source_addr = r.c_str(21, "source_addr")
        dest_addr_ton = r.u8("dest_addr_ton")
        dest_addr_npi = r.u8("dest_addr_npi")
        destination_addr = r.c_str(21, "destination_addr")
        esm_class = r.u8("esm_class")
        protocol_id = r.u8("protocol_id")
        priority_flag = r.u8("priority_flag")
        schedule_delivery_time = r.c_str(17, "schedule_delivery_time")
        validity_period = r.c_str(17, "validity_period")
        registered_delivery = r.u8("registered_delivery")
        replace_if_present_flag = r.u8("replace_if_present_flag")
        data_coding = r.u8("data_coding")
        sm_default_msg_id = r.u8("sm_default_msg_id")
        sm_length = r.u8("sm_length")
        short_message = r.octets(sm_length, "short_message")
        return cls(sequence=sequence, status=status, service_type=service_type,
                   source_addr_ton=source_addr_ton, source_addr_npi=source_addr_npi,
                   source_addr=source_addr, dest_addr_ton=dest_addr_ton,
                   dest_addr_npi=dest_addr_npi, destination_addr=destination_addr,
                   esm_class=esm_class, protocol_id=protocol_id, priority_flag=priority_flag,
                   schedule_delivery_time=schedule_delivery_time,
                   validity_period=validity_period, registered_delivery=registered_delivery,
                   replace_if_present_flag=replace_if_present_flag, data_coding=data_coding,
                   sm_default_msg_id=sm_default_msg_id, short_message=short_message,
                   tlvs=r.tlvs())

    @property
    def payload(self) -> bytes:
        """The user data: ``short_message``, or the ``message_payload`` TLV when that is used."""
        if self.short_message:
            return self.short_message
        return tlv(self.tlvs, Tag.MESSAGE_PAYLOAD) or b""


@dataclass(frozen=True, kw_only=True)
class SubmitSm(_ShortMessage):
    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM
    response: ClassVar[type[Pdu] | None] = SubmitSmResp


@dataclass(frozen=True, kw_only=True)
class DeliverSm(_ShortMessage):
    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM
    response: ClassVar[type[Pdu] | None] = DeliverSmResp


@dataclass(frozen=True, kw_only=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, kw_only=True)
class EnquireLink(Pdu):
    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK
    response: ClassVar[type[Pdu] | None] = EnquireLinkResp


@dataclass(frozen=True, kw_only=True)
class UnbindResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.UNBIND_RESP


@dataclass(frozen=True, kw_only=True)
class Unbind(Pdu):
    command_id: ClassVar[CommandId] = CommandId.UNBIND
    response: ClassVar[type[Pdu] | None] = UnbindResp


PDU_TYPES: Final[dict[int, type[Pdu]]] = {
    cls.command_id: cls
    for cls in (GenericNack, BindTransceiver, BindTransceiverResp, SubmitSm, SubmitSmResp,
                DeliverSm, DeliverSmResp, EnquireLink, EnquireLinkResp, Unbind, UnbindResp)
}


def response_to(request: Pdu, status: int = Status.ESME_ROK, **fields: str) -> Pdu:
    """The response PDU to ``request`` (same sequence), or a ``generic_nack`` for a request
    without a response class of its own."""
    resp = request.response
    if resp is None:
        return GenericNack(sequence=request.sequence, status=status)
    return resp(sequence=request.sequence, status=status, **fields)


def encode(pdu: Pdu) -> bytes:
    """One PDU as bytes on the wire."""
    if not 0 <= pdu.sequence <= 0x7FFFFFFF:
        raise SmppUsageError(f"sequence number out of range: {pdu.sequence}")
    w = _Writer()
    pdu.encode_body(w)
    return HEADER.pack(HEADER.size + len(w.buf), pdu.command_id, pdu.status,
                       pdu.sequence) + bytes(w.buf)


def decode(frame: bytes) -> Pdu:
    """One complete PDU (header included). ``SmppProtocolError`` if it cannot be decoded."""
    if len(frame) < HEADER.size:
        raise SmppProtocolError(f"PDU shorter than its header ({len(frame)} octets)")
    length, command_id, status, sequence = HEADER.unpack_from(frame)
    if length != len(frame):
        raise SmppProtocolError(f"command_length {length} but {len(frame)} octets")
    cls = PDU_TYPES.get(command_id)
    if cls is None:
        raise SmppProtocolError(f"unknown command_id 0x{command_id:08X}")
    try:
        return cls.decode_body(_Reader(frame[HEADER.size:]), sequence=sequence, status=status)
    except _BodyError as exc:
        raise SmppProtocolError(f"malformed {cls.command_id.name.lower()}: {exc}") from exc


# -- the session ---------------------------------------------------------------------------------

class Role(enum.Enum):
    ESME = "esme"
    SMSC = "smsc"


class State(enum.Enum):
    OPEN = "open"            # connected, not bound
    BINDING = "binding"      # bind_transceiver sent, no answer yet
    BOUND = "bound"          # bound as transceiver
    UNBINDING = "unbinding"  # unbind sent (by either side), no unbind_resp yet
    CLOSED = "closed"        # unbound or the connection was lost


class Way(enum.Enum):
    E2S = "esme->smsc"
    S2E = "smsc->esme"


_ANY_OPEN: Final = (State.OPEN, State.BINDING, State.BOUND, State.UNBINDING)


def _moves() -> dict[tuple[State, Way, str], State]:
    t: dict[tuple[State, Way, str], State] = {
        (State.OPEN, Way.E2S, "bind_transceiver"): State.BINDING,
        (State.BINDING, Way.S2E, "bind_transceiver_resp"): State.BOUND,
        (State.BINDING, Way.S2E, "bind_transceiver_resp!"): State.OPEN,
        (State.BINDING, Way.S2E, "generic_nack!"): State.OPEN,
        (State.BOUND, Way.E2S, "submit_sm"): State.BOUND,
        (State.BOUND, Way.S2E, "deliver_sm"): State.BOUND,
        (State.BOUND, Way.E2S, "unbind"): State.UNBINDING,
        (State.BOUND, Way.S2E, "unbind"): State.UNBINDING,
        (State.UNBINDING, Way.E2S, "unbind_resp"): State.CLOSED,
        (State.UNBINDING, Way.S2E, "unbind_resp"): State.CLOSED,
    }
    for state in (State.BOUND, State.UNBINDING):
        for way in Way:
            for name in ("submit_sm_resp", "submit_sm_resp!", "deliver_sm_resp",
                         "deliver_sm_resp!"):
                t[(state, way, name)] = state
    for state in _ANY_OPEN:
        for way in Way:
            for name in ("enquire_link", "enquire_link_resp", "enquire_link_resp!"):
                t[(state, way, name)] = state
            t.setdefault((state, way, "generic_nack"), state)
            t.setdefault((state, way, "generic_nack!"), state)
    return t


#: (state, direction, pdu name, "!" appended for a response with an error status) -> next state
MOVES: Final[dict[tuple[State, Way, str], State]] = _moves()


def _event(pdu: Pdu) -> str:
    return pdu.name + ("!" if pdu.is_response and pdu.status != Status.ESME_ROK else "")


class SmppConnection:
    """One SMPP session, either side, without I/O: feed it bytes with ``receive_data``, take
    decoded PDUs from ``events_received``, queue PDUs with ``send`` and write
    ``data_to_send()`` to the socket."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.state = State.OPEN
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._events: list[Pdu] = []
        self._sequence = 0

    @property
    def _out(self) -> Way:
        return Way.E2S if self.role is Role.ESME else Way.S2E

    @property
    def _in(self) -> Way:
        return Way.S2E if self.role is Role.ESME else Way.E2S

    def next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    # -- sending ---------------------------------------------------------------------------------

    def send(self, pdu: Pdu) -> None:
        """Queue ``pdu`` for sending (a request without a sequence number gets the next one
        assigned: use ``next_sequence`` beforehand to know it)."""
        nxt = MOVES.get((self.state, self._out, _event(pdu)))
        if nxt is None:
            raise SmppUsageError(f"cannot send {pdu.name} in state {self.state.value}")
        if pdu.sequence == 0 and not pdu.is_response:
            pdu = replace(pdu, sequence=self.next_sequence())
        self._outbox += encode(pdu)
        self.state = nxt

    def data_to_send(self) -> bytes:
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    # -- receiving -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer. Raises ``SmppProtocolError`` on a broken frame (drop the
        connection); everything decodable is in ``events_received``."""
        if self.state is State.CLOSED:
            return
        self._inbox += data
        while len(self._inbox) >= 4:
            (length,) = struct.unpack_from("!I", self._inbox)
            if not HEADER.size <= length <= MAX_PDU_LENGTH:
                self.state = State.CLOSED
                raise SmppProtocolError(f"command_length {length} out of range")
            if len(self._inbox) < length:
                break
            frame = bytes(self._inbox[:length])
            del self._inbox[:length]
            self._receive_frame(frame)

    def receive_eof(self) -> None:
        self.state = State.CLOSED

    def events_received(self) -> list[Pdu]:
        events, self._events = self._events, []
        return events

    def _receive_frame(self, frame: bytes) -> None:
        _length, command_id, _status, sequence = HEADER.unpack_from(frame)
        is_response = bool(command_id & RESPONSE_BIT)
        try:
            pdu = decode(frame)
        except SmppProtocolError:
            if is_response:
                raise
            status = (Status.ESME_RINVCMDID if command_id not in PDU_TYPES
                      else Status.ESME_RINVCMDLEN)
            self._outbox += encode(GenericNack(sequence=sequence, status=status))
            return
        nxt = MOVES.get((self.state, self._in, _event(pdu)))
        if nxt is None:
            if not pdu.is_response:
                # a request this state does not allow: answer it, the application never sees it
                self._outbox += encode(response_to(pdu, Status.ESME_RINVBNDSTS))
            return  # an unexpected response is dropped
        self.state = nxt
        if isinstance(pdu, EnquireLink):
            self._outbox += encode(response_to(pdu))
            return
        if isinstance(pdu, Unbind):
            self._outbox += encode(response_to(pdu))
            self.state = State.CLOSED
        self._events.append(pdu)


# -- text: segmentation and reassembly -----------------------------------------------------------

DC_DEFAULT: Final = 0x00  # SMSC default alphabet; we only put ASCII in it
DC_UCS2: Final = 0x08
ESM_UDHI: Final = 0x40
ESM_RECEIPT: Final = 0x04
ESM_TYPE_MASK: Final = 0x3C

UCS2_SINGLE: Final = 70   # UTF-16 units in one part
UCS2_PART: Final = 67     # with the 6-octet concatenation UDH
OCTETS_SINGLE: Final = 140
OCTETS_PART: Final = 134
MAX_PARTS: Final = 255


@dataclass(frozen=True)
class Part:
    data_coding: int
    esm_class: int
    short_message: bytes


def _is_high_surrogate(unit: bytes) -> bool:
    return 0xD8 <= unit[0] <= 0xDB


def split_text(text: str, *, ref: int, max_parts: int = MAX_PARTS) -> list[Part]:
    """The short messages for ``text``: one part when it fits, else concatenated parts with a
    UDH (reference ``ref``, 0-255). ``ValueError`` for an empty text or one that needs more
    than ``max_parts`` parts."""
    if not text:
        raise ValueError("empty text")
    if not 0 <= ref <= 0xFF:
        raise ValueError(f"concatenation reference out of range: {ref}")
    if text.isascii():
        data, coding, unit, single, per_part = (text.encode("ascii"), DC_DEFAULT, 1,
                                                OCTETS_SINGLE, OCTETS_PART)
    else:
        data, coding, unit, single, per_part = (text.encode("utf-16-be"), DC_UCS2, 2,
                                                UCS2_SINGLE * 2, UCS2_PART * 2)
    if len(data) <= single:
        return [Part(coding, 0, data)]
    chunks: list[bytes] = []
    pos = 0
    while pos < len(data):
        end = min(pos + per_part, len(data))
        if unit == 2 and end < len(data) and _is_high_surrogate(data[end - 2:end]):
            end -= 2  # never cut a surrogate pair: its low half starts the next part
        chunks.append(data[pos:end])
        pos = end
    if len(chunks) > max_parts:
        raise ValueError(f"text needs {len(chunks)} parts, more than {max_parts}")
    total = len(chunks)
    return [Part(coding, ESM_UDHI, bytes([5, 0, 3, ref, total, seq]) + chunk)
            for seq, chunk in enumerate(chunks, start=1)]


def parts_needed(text: str) -> int:
    return len(split_text(text, ref=0, max_parts=10_000)) if text else 0


@dataclass(frozen=True)
class Concat:
    """The concatenation information of one part."""

    ref: int
    total: int
    seq: int


def parse_udh(esm_class: int, short_message: bytes) -> tuple[Concat | None, bytes]:
    """(concatenation info or None, user data without the UDH). ``ValueError`` on a bad UDH."""
    if not esm_class & ESM_UDHI:
        return None, short_message
    if not short_message:
        raise ValueError("UDHI set but no user data")
    udhl = short_message[0]
    if 1 + udhl > len(short_message):
        raise ValueError("UDH longer than the message")
    udh, rest = short_message[1:1 + udhl], short_message[1 + udhl:]
    concat: Concat | None = None
    i = 0
    while i + 2 <= len(udh):
        iei, iedl = udh[i], udh[i + 1]
        ie = udh[i + 2:i + 2 + iedl]
        if len(ie) != iedl:
            raise ValueError("truncated UDH element")
        if iei == 0x00 and iedl == 3:
            concat = Concat(ie[0], ie[1], ie[2])
        elif iei == 0x08 and iedl == 4:
            concat = Concat((ie[0] << 8) | ie[1], ie[2], ie[3])
        i += 2 + iedl
    if concat is not None and not 1 <= concat.seq <= concat.total:
        raise ValueError(f"part {concat.seq} of {concat.total}")
    return concat, rest


def decode_text(data_coding: int, data: bytes) -> str:
    if data_coding == DC_UCS2:
        return data.decode("utf-16-be", errors="replace")
    # 0 (SMSC default; ours is ASCII), 1 (IA5), 3 (Latin-1), 4 (8-bit): octets as Latin-1
    return data.decode("latin-1")


@dataclass(frozen=True)
class Assembled:
    text: str
    parts: int
    #: what the caller tagged each part with (e.g. its SMSC message id), in part order
    tags: tuple[str, ...]


class Reassembler:
    """Puts concatenated parts back together. ``feed`` returns the whole text once its last
    part arrived (at once for a single part). At most ``max_pending`` messages are kept
    waiting; the oldest is dropped beyond that."""

    def __init__(self, max_pending: int = 1000) -> None:
        self.max_pending = max_pending
        self._pending: OrderedDict[tuple[Hashable, int, int],
                                   dict[int, tuple[int, bytes, str]]] = OrderedDict()

    def feed(self, key: Hashable, esm_class: int, data_coding: int, short_message: bytes,
             tag: str = "") -> Assembled | None:
        concat, data = parse_udh(esm_class, short_message)
        if concat is None or concat.total == 1:
            return Assembled(decode_text(data_coding, data), 1, (tag,))
        slot = (key, concat.ref, concat.total)
        parts = self._pending.setdefault(slot, {})
        self._pending.move_to_end(slot)
        parts[concat.seq] = (data_coding, data, tag)
        if len(parts) < concat.total:
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
            return None
        del self._pending[slot]
        ordered = [parts[i] for i in range(1, concat.total + 1)]
        coding = ordered[0][0]
        if coding == DC_UCS2:  # decode the joined units: a pair split by a sloppy sender heals
            text = decode_text(coding, b"".join(p[1] for p in ordered))
        else:
            text = "".join(decode_text(p[0], p[1]) for p in ordered)
        return Assembled(text, concat.total, tuple(p[2] for p in ordered))


# -- delivery receipts ---------------------------------------------------------------------------

class MessageState(enum.IntEnum):
    """The ``message_state`` TLV (3.4, 5.2.28) and the receipt ``stat`` word of each."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


STAT_OF_STATE: Final = {
    MessageState.ENROUTE: "ENROUTE", MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED", MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV", MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN", MessageState.REJECTED: "REJECTD",
}
#: final states that mean the message did not reach the handset
FAILED_STATS: Final = frozenset({"EXPIRED", "DELETED", "UNDELIV", "REJECTD", "UNKNOWN"})
DELIVERED_STAT: Final = "DELIVRD"

_RECEIPT_KEY = re.compile(r"(?i)(?<![A-Za-z])(id|sub|dlvrd|submit date|done date|stat|err|text):")


@dataclass(frozen=True)
class Receipt:
    message_id: str
    stat: str
    err: str = ""
    sub: str = ""
    dlvrd: str = ""
    submit_date: str = ""
    done_date: str = ""
    text: str = ""

    @property
    def final(self) -> bool:
        return self.stat == DELIVERED_STAT or self.stat in FAILED_STATS

    @property
    def delivered(self) -> bool:
        return self.stat == DELIVERED_STAT


def parse_receipt_text(text: str) -> Receipt:
    """Parse ``id:... sub:... dlvrd:... submit date:... done date:... stat:... err:...
    text:...``; ``ValueError`` without an id or a stat."""
    values: dict[str, str] = {}
    matches = list(_RECEIPT_KEY.finditer(text))
    for i, m in enumerate(matches):
        key = m.group(1).lower()
        if key == "text":
            values[key] = text[m.end():]
            break
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        values.setdefault(key, text[m.end():end].strip())
    if not values.get("id") or not values.get("stat"):
        raise ValueError("not a delivery receipt (no id or stat)")
    return Receipt(message_id=values["id"], stat=values["stat"].upper(),
                   err=values.get("err", ""), sub=values.get("sub", ""),
                   dlvrd=values.get("dlvrd", ""), submit_date=values.get("submit date", ""),
                   done_date=values.get("done date", ""), text=values.get("text", ""))


def is_receipt(pdu: DeliverSm) -> bool:
    return pdu.esm_class & ESM_TYPE_MASK == ESM_RECEIPT


def receipt_of(pdu: DeliverSm) -> Receipt:
    """The receipt in a deliver_sm (``is_receipt``), TLVs over the text. ``ValueError`` if
    neither says which message and what became of it."""
    try:
        parsed: Receipt | None = parse_receipt_text(pdu.payload.decode("latin-1"))
    except ValueError:
        parsed = None
    raw_id = tlv(pdu.tlvs, Tag.RECEIPTED_MESSAGE_ID)
    raw_state = tlv(pdu.tlvs, Tag.MESSAGE_STATE)
    message_id = raw_id.rstrip(b"\x00").decode("latin-1") if raw_id else ""
    stat = ""
    if raw_state and len(raw_state) == 1 and raw_state[0] in STAT_OF_STATE:
        stat = STAT_OF_STATE[MessageState(raw_state[0])]
    if parsed is None:
        if not (message_id and stat):
            raise ValueError("deliver_sm receipt without id/stat (text or TLVs)")
        return Receipt(message_id=message_id, stat=stat)
    return replace(parsed, message_id=message_id or parsed.message_id, stat=stat or parsed.stat)


def format_receipt(receipt: Receipt) -> str:
    """The receipt text an SMSC puts in the deliver_sm (3.4 appendix B)."""
    return (f"id:{receipt.message_id} sub:{receipt.sub or '001'} dlvrd:{receipt.dlvrd or '001'} "
            f"submit date:{receipt.submit_date} done date:{receipt.done_date} "
            f"stat:{receipt.stat} err:{receipt.err or '000'} text:{receipt.text}")
