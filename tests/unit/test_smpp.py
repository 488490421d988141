"""The sans-IO SMPP core (callcenter/channels/smpp.py) and the pure helpers of the SMS plug-in:
codec round trips, the session table, segmentation of long Chinese text, reassembly, receipts,
status mapping. No loop, no socket."""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.channels import smpp
from callcenter.channels.messages import DeliveryState, Outbound
from callcenter.channels.sms import PartRow, check_phone, conclusion, sms_text
from callcenter.errors import DeliveryError, SmppProtocolError, SmppUsageError

# 150 Chinese characters: a statement notice
NOTICE = ("尊敬的客户您好，您的证券账户对账单已生成，请登录网上营业厅或手机客户端查看资金、"
          "持仓及成交明细。如有疑问请致电客服热线九五五八八，我们将竭诚为您服务。温馨提示：股市有"
          "风险，投资需谨慎。请妥善保管您的交易密码和资金密码，切勿向他人透露。感谢您一直以来对我"
          "们的信任与支持，生活愉快！示例证券客户服务中心。")
assert len(NOTICE) == 150, len(NOTICE)

TLVS: smpp.Tlvs = ((smpp.Tag.RECEIPTED_MESSAGE_ID, b"abc\x00"), (smpp.Tag.MESSAGE_STATE, b"\x02"))

EVERY_PDU: list[smpp.Pdu] = [
    smpp.GenericNack(sequence=7, status=smpp.Status.ESME_RINVCMDID),
    smpp.BindTransceiver(sequence=1, system_id="callcenter", password="s3cret",
                         system_type="CC", addr_ton=5, addr_npi=0, address_range="955.*"),
    smpp.BindTransceiverResp(sequence=1, system_id="SMSC",
                             tlvs=((smpp.Tag.SC_INTERFACE_VERSION, b"\x34"),)),
    smpp.BindTransceiverResp(sequence=1, status=smpp.Status.ESME_RINVPASWD),
    smpp.SubmitSm(sequence=2, service_type="CMT", source_addr_ton=5, source_addr="95588",
                  dest_addr_ton=1, dest_addr_npi=1, destination_addr="8613800138000",
                  esm_class=smpp.ESM_UDHI, registered_delivery=1, data_coding=smpp.DC_UCS2,
                  validity_period="000001000000000R",
                  short_message=bytes([5, 0, 3, 9, 2, 1]) + "你好".encode("utf-16-be"),
                  tlvs=((0x1403, b"x"),)),
    smpp.SubmitSmResp(sequence=2, message_id="0000000001"),
    smpp.SubmitSmResp(sequence=3, status=smpp.Status.ESME_RTHROTTLED),
    smpp.DeliverSm(sequence=4, source_addr="8613800138000", destination_addr="95588",
                   esm_class=smpp.ESM_RECEIPT,
                   short_message=b"id:abc sub:001 dlvrd:001 submit date:2611231200 "
                                 b"done date:2611231201 stat:DELIVRD err:000 text:hi",
                   tlvs=TLVS),
    smpp.DeliverSmResp(sequence=4),
    smpp.EnquireLink(sequence=5),
    smpp.EnquireLinkResp(sequence=5),
    smpp.Unbind(sequence=6),
    smpp.UnbindResp(sequence=6),
]


# -- codec ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("pdu", EVERY_PDU, ids=lambda p: f"{p.name}-{p.status}")
def test_every_pdu_round_trips(pdu: smpp.Pdu) -> None:
    wire = smpp.encode(pdu)
    length, command_id, status, sequence = struct.unpack("!IIII", wire[:16])
    assert (length, command_id, status, sequence) == (len(wire), pdu.command_id, pdu.status,
                                                      pdu.sequence)
    assert smpp.decode(wire) == pdu


def test_known_bytes() -> None:
    assert smpp.encode(smpp.EnquireLink(sequence=1)).hex() == "00000010000000150000000000000001"
    bind = smpp.encode(smpp.BindTransceiver(sequence=2, system_id="ab", password="pw"))
    assert bind[16:] == b"ab\x00pw\x00\x00\x34\x00\x00\x00"
    resp = smpp.encode(smpp.SubmitSmResp(sequence=3, message_id="x1"))
    assert resp.hex() == "000000138000000400000000" + "00000003" + "783100"


def test_password_is_not_in_repr() -> None:
    assert "s3cret" not in repr(EVERY_PDU[1])


def test_error_responses_may_come_without_body() -> None:
    wire = struct.pack("!IIII", 16, smpp.CommandId.SUBMIT_SM_RESP, smpp.Status.ESME_RMSGQFUL, 9)
    assert smpp.decode(wire) == smpp.SubmitSmResp(sequence=9, status=smpp.Status.ESME_RMSGQFUL)


@pytest.mark.parametrize("frame, match", [
    (b"\x00\x00\x00\x10", "shorter than its header"),
    (struct.pack("!IIII", 20, smpp.CommandId.ENQUIRE_LINK, 0, 1), "command_length 20"),
    (struct.pack("!IIII", 16, 0x00000077, 0, 1), "unknown command_id"),
    (struct.pack("!IIII", 19, smpp.CommandId.BIND_TRANSCEIVER, 0, 1) + b"abc", "no NUL"),
    (struct.pack("!IIII", 18, smpp.CommandId.SUBMIT_SM_RESP, 0, 1) + b"ab", "no NUL"),
])
def test_undecodable_frames(frame: bytes, match: str) -> None:
    with pytest.raises(SmppProtocolError, match=match):
        smpp.decode(frame)


def test_fields_that_do_not_fit_are_refused() -> None:
    with pytest.raises(SmppUsageError, match="system_id"):
        smpp.encode(smpp.BindTransceiver(system_id="x" * 16))
    with pytest.raises(SmppUsageError, match="254"):
        smpp.encode(smpp.SubmitSm(short_message=b"x" * 255))
    with pytest.raises(SmppUsageError, match="ASCII"):
        smpp.encode(smpp.SubmitSm(destination_addr="一二三"))
    with pytest.raises(SmppUsageError, match="one octet"):
        smpp.encode(smpp.SubmitSm(esm_class=256))


def test_message_payload_tlv_is_the_payload_when_short_message_is_empty() -> None:
    pdu = smpp.DeliverSm(tlvs=((smpp.Tag.MESSAGE_PAYLOAD, b"long"),))
    assert smpp.decode(smpp.encode(pdu)).payload == b"long"  # type: ignore[attr-defined]


# -- the session ---------------------------------------------------------------------------------

def state_of(conn: smpp.SmppConnection) -> smpp.State:
    return conn.state  # (a call: mypy would keep the narrowed type of ``conn.state``)


def bound_pair() -> tuple[smpp.SmppConnection, smpp.SmppConnection]:
    esme, smsc = smpp.SmppConnection(smpp.Role.ESME), smpp.SmppConnection(smpp.Role.SMSC)
    esme.send(smpp.BindTransceiver(system_id="cc", password="pw"))
    smsc.receive_data(esme.data_to_send())
    (bind,) = smsc.events_received()
    smsc.send(smpp.response_to(bind, system_id="SIM"))
    esme.receive_data(smsc.data_to_send())
    assert esme.events_received() == [smpp.BindTransceiverResp(sequence=1, system_id="SIM")]
    assert esme.state is smsc.state is smpp.State.BOUND
    return esme, smsc


def test_bind_submit_receipt_unbind() -> None:
    esme, smsc = bound_pair()
    esme.send(smpp.SubmitSm(destination_addr="8613800138000", short_message=b"hi"))
    wire = esme.data_to_send()
    for i in range(len(wire)):  # any split of the stream
        smsc.receive_data(wire[i:i + 1])
    (submit,) = smsc.events_received()
    assert isinstance(submit, smpp.SubmitSm) and submit.sequence == 2
    smsc.send(smpp.response_to(submit, message_id="m1"))
    smsc.send(smpp.DeliverSm(esm_class=smpp.ESM_RECEIPT, short_message=b"id:m1 stat:DELIVRD"))
    esme.receive_data(smsc.data_to_send())
    resp, receipt = esme.events_received()
    assert resp == smpp.SubmitSmResp(sequence=2, message_id="m1")
    assert isinstance(receipt, smpp.DeliverSm)
    esme.send(smpp.response_to(receipt))
    esme.send(smpp.Unbind())
    assert state_of(esme) is smpp.State.UNBINDING
    smsc.receive_data(esme.data_to_send())
    assert [p.name for p in smsc.events_received()] == ["deliver_sm_resp", "unbind"]
    assert smsc.state is smpp.State.CLOSED  # unbind_resp went out by itself
    esme.receive_data(smsc.data_to_send())
    assert esme.events_received() == [smpp.UnbindResp(sequence=3)]
    assert state_of(esme) is smpp.State.CLOSED


def test_enquire_link_is_answered_by_the_core() -> None:
    esme, smsc = bound_pair()
    smsc.send(smpp.EnquireLink())
    esme.receive_data(smsc.data_to_send())
    assert esme.events_received() == []
    smsc.receive_data(esme.data_to_send())
    assert smsc.events_received() == [smpp.EnquireLinkResp(sequence=1)]


def test_a_request_the_state_does_not_allow_is_refused_for_us() -> None:
    smsc = smpp.SmppConnection(smpp.Role.SMSC)
    smsc.receive_data(smpp.encode(smpp.SubmitSm(sequence=5, short_message=b"x")))
    assert smsc.events_received() == []
    assert smpp.decode(smsc.data_to_send()) == smpp.SubmitSmResp(
        sequence=5, status=smpp.Status.ESME_RINVBNDSTS)
    esme, _ = bound_pair()  # a second bind on a bound session
    esme.receive_data(smpp.encode(smpp.SubmitSm(sequence=9)))  # an SMSC may not submit
    assert smpp.decode(esme.data_to_send()).status == smpp.Status.ESME_RINVBNDSTS


def test_unknown_and_malformed_requests_get_generic_nack() -> None:
    esme, _ = bound_pair()
    esme.receive_data(struct.pack("!IIII", 16, 0x00000077, 0, 11))
    esme.receive_data(struct.pack("!IIII", 17, smpp.CommandId.DELIVER_SM, 0, 12) + b"x")
    out = esme.data_to_send()
    assert smpp.decode(out[:16]) == smpp.GenericNack(sequence=11,
                                                     status=smpp.Status.ESME_RINVCMDID)
    assert smpp.decode(out[16:]) == smpp.GenericNack(sequence=12,
                                                     status=smpp.Status.ESME_RINVCMDLEN)
    assert esme.state is smpp.State.BOUND


def test_broken_framing_is_the_peers_fault() -> None:
    esme, _ = bound_pair()
    with pytest.raises(SmppProtocolError, match="out of range"):
        esme.receive_data(struct.pack("!I", 10**6))
    assert esme.state is smpp.State.CLOSED
    esme.receive_data(b"ignored once closed")


def test_sending_out_of_state_is_our_bug() -> None:
    esme = smpp.SmppConnection(smpp.Role.ESME)
    with pytest.raises(SmppUsageError, match="submit_sm in state open"):
        esme.send(smpp.SubmitSm())
    smsc = smpp.SmppConnection(smpp.Role.SMSC)
    with pytest.raises(SmppUsageError):
        smsc.send(smpp.BindTransceiver())


def test_refused_bind_goes_back_to_open() -> None:
    esme = smpp.SmppConnection(smpp.Role.ESME)
    esme.send(smpp.BindTransceiver(system_id="cc"))
    esme.receive_data(smpp.encode(smpp.BindTransceiverResp(sequence=1,
                                                           status=smpp.Status.ESME_RINVPASWD)))
    assert esme.events_received()[0].status == smpp.Status.ESME_RINVPASWD
    assert esme.state is smpp.State.OPEN


def test_sequence_numbers_wrap() -> None:
    conn = smpp.SmppConnection(smpp.Role.ESME)
    conn._sequence = 0x7FFFFFFE
    assert [conn.next_sequence() for _ in range(3)] == [0x7FFFFFFF, 1, 2]


def test_every_move_leads_to_a_state() -> None:
    for (state, _way, event), nxt in smpp.MOVES.items():
        assert state is not smpp.State.CLOSED
        assert isinstance(nxt, smpp.State)
        assert event.rstrip("!") in {t.command_id.name.lower() for t in smpp.PDU_TYPES.values()}


# -- segmentation --------------------------------------------------------------------------------

def units(part: smpp.Part) -> int:
    _concat, data = smpp.parse_udh(part.esm_class, part.short_message)
    return len(data) // 2


def test_150_chinese_characters_make_three_ucs2_parts() -> None:
    parts = smpp.split_text(NOTICE, ref=42)
    assert [units(p) for p in parts] == [67, 67, 16]
    for seq, part in enumerate(parts, start=1):
        assert part.data_coding == smpp.DC_UCS2 and part.esm_class == smpp.ESM_UDHI
        assert part.short_message[:6] == bytes([5, 0, 3, 42, 3, seq])
        assert len(part.short_message) <= 140
    text = b"".join(p.short_message[6:] for p in parts).decode("utf-16-be")
    assert text == NOTICE


def test_single_part_limits() -> None:
    assert smpp.split_text("你" * 70, ref=0) == [smpp.Part(smpp.DC_UCS2, 0,
                                                          ("你" * 70).encode("utf-16-be"))]
    assert len(smpp.split_text("你" * 71, ref=0)) == 2
    assert smpp.split_text("a" * 140, ref=0) == [smpp.Part(smpp.DC_DEFAULT, 0, b"a" * 140)]
    two = smpp.split_text("a" * 141, ref=1)
    assert [len(p.short_message) - 6 for p in two] == [134, 7]
    assert {p.data_coding for p in two} == {smpp.DC_DEFAULT}
    assert smpp.split_text("价格 10.5", ref=0)[0].data_coding == smpp.DC_UCS2


def test_an_emoji_at_a_part_boundary_is_never_split() -> None:
    text = "股" * 66 + "📈" + "涨" * 80  # the pair would straddle units 67/68
    parts = smpp.split_text(text, ref=3)
    first = smpp.parse_udh(parts[0].esm_class, parts[0].short_message)[1]
    second = smpp.parse_udh(parts[1].esm_class, parts[1].short_message)[1]
    assert len(first) // 2 == 66
    assert first.decode("utf-16-be") == "股" * 66           # decodes alone, strictly
    assert second.decode("utf-16-be").startswith("📈涨")
    r = smpp.Reassembler()
    results = [r.feed("k", p.esm_class, p.data_coding, p.short_message) for p in parts]
    assert results[-1] is not None and results[-1].text == text


def test_too_long_and_empty_texts() -> None:
    with pytest.raises(ValueError, match="more than 2"):
        smpp.split_text(NOTICE, ref=0, max_parts=2)
    with pytest.raises(ValueError, match="empty"):
        smpp.split_text("", ref=0)
    with pytest.raises(ValueError, match="reference"):
        smpp.split_text("x", ref=256)
    assert smpp.parts_needed(NOTICE) == 3


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=700), st.integers(0, 255))
def test_any_text_splits_and_reassembles(text: str, ref: int) -> None:
    parts = smpp.split_text(text, ref=ref, max_parts=255)
    r = smpp.Reassembler()
    done = None
    for i, part in enumerate(reversed(parts)):  # in any order
        assert len(part.short_message) <= 140
        _concat, data = smpp.parse_udh(part.esm_class, part.short_message)
        if part.data_coding == smpp.DC_UCS2:
            data.decode("utf-16-be")  # no part ends or starts inside a surrogate pair
        done = r.feed("k", part.esm_class, part.data_coding, part.short_message, str(i))
        if i < len(parts) - 1:
            assert done is None
    assert done is not None and done.text == text and done.parts == len(parts)


# -- reassembly ----------------------------------------------------------------------------------

def test_reassembly_keeps_messages_apart_and_tags_in_order() -> None:
    r = smpp.Reassembler()
    a = smpp.split_text("甲" * 100, ref=1)
    b = smpp.split_text("乙" * 100, ref=1)
    assert r.feed("alice", a[1].esm_class, a[1].data_coding, a[1].short_message, "a2") is None
    assert r.feed("bob", b[0].esm_class, b[0].data_coding, b[0].short_message, "b1") is None
    done = r.feed("alice", a[0].esm_class, a[0].data_coding, a[0].short_message, "a1")
    assert done == smpp.Assembled("甲" * 100, 2, ("a1", "a2"))


def test_sixteen_bit_reference_and_bad_headers() -> None:
    r = smpp.Reassembler()
    p1 = bytes([6, 8, 4, 0x12, 0x34, 2, 1]) + "上".encode("utf-16-be")
    p2 = bytes([6, 8, 4, 0x12, 0x34, 2, 2]) + "海".encode("utf-16-be")
    assert r.feed("k", 0x40, 8, p1) is None
    assert r.feed("k", 0x40, 8, p2) == smpp.Assembled("上海", 2, ("", ""))
    assert smpp.parse_udh(0x40, p1)[0] == smpp.Concat(0x1234, 2, 1)
    for bad in (b"", bytes([9, 0, 3]), bytes([5, 0, 3, 1, 2, 3]), bytes([3, 0, 3, 1])):
        with pytest.raises(ValueError):
            smpp.parse_udh(0x40, bad)


def test_reassembler_forgets_the_oldest_beyond_its_bound() -> None:
    r = smpp.Reassembler(max_pending=2)
    for ref in range(3):
        p = smpp.split_text("x" * 200, ref=ref)[0]
        r.feed("k", p.esm_class, p.data_coding, p.short_message)
    late = smpp.split_text("x" * 200, ref=0)[1]
    assert r.feed("k", late.esm_class, late.data_coding, late.short_message) is None


# -- receipts ------------------------------------------------------------------------------------

def test_parse_a_receipt() -> None:
    text = ("id:0123456789 sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 "
            "stat:DELIVRD err:000 text:hello stat:x")
    r = smpp.parse_receipt_text(text)
    assert r == smpp.Receipt(message_id="0123456789", stat="DELIVRD", err="000", sub="001",
                             dlvrd="001", submit_date="2611231200", done_date="2611231201",
                             text="hello stat:x")
    assert r.final and r.delivered
    assert smpp.parse_receipt_text(smpp.format_receipt(r)) == r
    lower = smpp.parse_receipt_text("ID:7 Stat:undeliv Err:001")
    assert (lower.message_id, lower.stat, lower.err, lower.delivered) == ("7", "UNDELIV", "001",
                                                                          False)
    assert lower.final and not smpp.parse_receipt_text("id:7 stat:ACCEPTD").final
    with pytest.raises(ValueError):
        smpp.parse_receipt_text("hello, this is an SMS")


def test_receipt_tlvs_take_precedence_and_suffice() -> None:
    pdu = smpp.DeliverSm(esm_class=0x04, short_message=b"id:1 stat:ENROUTE",
                         tlvs=((smpp.Tag.RECEIPTED_MESSAGE_ID, b"ABC\x00"),
                               (smpp.Tag.MESSAGE_STATE, bytes([smpp.MessageState.REJECTED]))))
    assert smpp.is_receipt(pdu)
    r = smpp.receipt_of(pdu)
    assert (r.message_id, r.stat) == ("ABC", "REJECTD")
    only = smpp.DeliverSm(esm_class=0x04, tlvs=pdu.tlvs)
    assert smpp.receipt_of(only) == smpp.Receipt(message_id="ABC", stat="REJECTD")
    with pytest.raises(ValueError):
        smpp.receipt_of(smpp.DeliverSm(esm_class=0x04, short_message=b"nothing"))
    assert not smpp.is_receipt(smpp.DeliverSm(esm_class=0x40))


# -- status mapping ------------------------------------------------------------------------------

@pytest.mark.parametrize("status, retriable", [
    (smpp.Status.ESME_RTHROTTLED, True), (smpp.Status.ESME_RMSGQFUL, True),
    (smpp.Status.ESME_RX_T_APPN, True), (smpp.Status.ESME_RINVDSTADR, False),
    (smpp.Status.ESME_RSYSERR, False), (smpp.Status.ESME_RX_P_APPN, False), (0x400, False),
])
def test_submit_status_mapping(status: int, retriable: bool) -> None:
    err = smpp.submit_error(status, part=2, parts=3)
    assert err.retriable is retriable
    assert smpp.status_name(status) in err.reason and "part 2/3" in err.reason
    assert smpp.status_name(0x400) == "status 0x00000400"


# -- pure helpers of the plug-in -----------------------------------------------------------------

def outbound(template: str = "statement", data: dict[str, Any] | None = None,
             to: str = "+8613800138000") -> Outbound:
    return Outbound(message_id="msg-unit-0001", channel="sms", to=to, template=template,
                    account="310000000001", data={} if data is None else data,
                    created_at=dt.datetime.now(dt.UTC))


@pytest.mark.parametrize("to", ["13800138000", "+8613800138000", "95588", "1" * 20])
def test_good_phone_numbers(to: str) -> None:
    assert check_phone(to) == to


@pytest.mark.parametrize("to", ["1234", "1" * 21, "138 0013 8000", "+", "++8613800138000",
                                "13800138000\n", "abc@example.com", "８６１３８００"])
def test_bad_phone_numbers_are_not_retriable(to: str) -> None:
    with pytest.raises(DeliveryError) as err:
        check_phone(to)
    assert not err.value.retriable


def test_sms_text_sources() -> None:
    assert sms_text(outbound(data={"text": " 您好\r\n世界\x07 "})) == "您好\n世界"
    fill = sms_text(outbound("fill", {"side": "buy", "name": "浦发银行", "code": "600000",
                                      "qty": 1000, "price": "8.50", "time": "09:31"}))
    assert fill.startswith("【示例证券】") and "浦发银行" in fill
    statement = sms_text(outbound("statement", {"as_of": "2026-11-23", "customer": "张三"}))
    assert "对账单" in statement and "\n" not in statement  # the subject line, not the e-mail
    for bad in ({"text": 5}, {"text": "\x07"}):
        with pytest.raises(DeliveryError) as err:
            sms_text(outbound(data=bad))
        assert not err.value.retriable
    with pytest.raises(DeliveryError) as err:
        sms_text(outbound("fill", {}))
    assert not err.value.retriable


def row(part: int, stat: str | None, err: str = "000") -> PartRow:
    return PartRow(f"id{part}", "b", "msg-1", part, 3, stat, err)


def test_conclusion_of_receipts() -> None:
    assert conclusion([row(1, "DELIVRD"), row(2, None), row(3, "DELIVRD")]) is None
    state, reason, detail = conclusion([row(1, "DELIVRD"), row(2, "DELIVRD"),
                                        row(3, "DELIVRD")]) or (None, "", {})
    assert state is DeliveryState.DELIVERED and reason == ""
    assert detail == {"parts": 3, "smsc_ids": ["id1", "id2", "id3"], "stat": "DELIVRD"}
    state, reason, detail = conclusion([row(1, "DELIVRD"), row(2, "UNDELIV", "001"),
                                        row(3, None)]) or (None, "", {})
    assert state is DeliveryState.FAILED
    assert reason == "SMSC receipt UNDELIV, err 001 (part 2/3)" and detail["stat"] == "UNDELIV"
    assert conclusion([row(1, "DELIVRD"), row(2, "DELIVRD")]) is None  # a row is missing
