"""The AMI edge's intake (``telephony/ami.py``) against a scripted peer on loopback: events that
answer no action are split once into plain dicts (however TCP cuts them), while responses and
events that carry an ActionID still reach the action that asked; a dropped link is told."""

from __future__ import annotations

import asyncio
import contextlib

from pydantic import SecretStr

from callcenter.config import AmiSettings
from callcenter.telephony.ami import AmiClient, event_headers
from callcenter.telephony.ami_events import AmiEvent, Hangup, NewChannel, OtherEvent

EVENTS = ("Event: Newchannel\r\nUniqueid: u1\r\nChannel: PJSIP/a-1\r\nChannelState: 4\r\n\r\n"
          "Event: UserEvent\r\nUserEvent: BenchDigits\r\nDigits: 1234567\r\n\r\n"
          "Event: Hangup\r\nUniqueid: u1\r\nChannel: PJSIP/a-1\r\nCause: 16\r\n"
          "Cause-txt: Normal Clearing\r\n\r\n")


LIST = ("Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n\r\n"
        "Event: CoreShowChannel\r\nActionID: {aid}\r\nChannel: PJSIP/a-1\r\n\r\n"
        "Event: CoreShowChannelsComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
        "ListItems: 1\r\n\r\n")


def action_id(request: str) -> str:
    return event_headers(request.strip()).get("ActionID", "")


async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Asterisk, scripted: log in, then the events cut in odd places, then answer actions."""
    try:
        await script(reader, writer)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the client closed the link
    finally:
        writer.close()


async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"Asterisk Call Manager/9.0.0\r\n")
    while True:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        name = event_headers(request.strip()).get("Action", "")
        aid = action_id(request)
        if name == "Challenge":
            writer.write(f"Response: Success\r\nActionID: {aid}\r\nChallenge: 42\r\n\r\n".encode())
        elif name == "Login":
            writer.write(f"Response: Success\r\nActionID: {aid}\r\n\r\n".encode())
            data = EVENTS.encode()
            for cut in (7, 40, 41, 90, len(data)):   # mid-name, mid-line, mid-terminator
                writer.write(data[:cut])
                await writer.drain()
                await asyncio.sleep(0.01)
                data = data[cut:]
                if not data:
                    break
        elif name == "CoreShowChannels":
            writer.write(LIST.replace("{aid}", aid).encode())
        await writer.drain()


async def test_events_arrive_typed_however_they_are_cut_and_actions_still_match() -> None:
    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    seen: list[AmiEvent] = []
    raw: list[dict[str, str]] = []
    ami = AmiClient(AmiSettings(port=port), SecretStr("s"), on_event=seen.append,
                    on_headers=raw.append)
    try:
        await ami.connect()
        async with asyncio.timeout(5):
            while len(seen) < 3:
                await asyncio.sleep(0.01)
        assert isinstance(seen[0], NewChannel) and seen[0].info.channel == "PJSIP/a-1"
        assert isinstance(seen[1], OtherEvent) and seen[1].headers["Digits"] == "1234567"
        assert isinstance(seen[2], Hangup) and seen[2].cause == 16
        rows = await ami.action_list("CoreShowChannels")
        assert [r["Channel"] for r in rows] == ["PJSIP/a-1"]
        assert len(seen) == 3   # the list's rows answered the action, not the event handlers
        # the raw headers (a benchmark's hook) come alongside, as Asterisk sent them
        assert [h["Event"] for h in raw] == ["Newchannel", "UserEvent", "Hangup"]
    finally:
        await ami.close()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


async def test_a_dropped_link_is_told_then_logged_in_again() -> None:
    """``on_lost`` hears each link that drops (Asterisk closing it here); ``on_ready`` runs
    again after the next login."""

    async def login_then_close(reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            for _ in range(2):  # Challenge, Login
                aid = action_id((await reader.readuntil(b"\r\n\r\n")).decode())
                writer.write(f"Response: Success\r\nActionID: {aid}\r\nChallenge: 42"
                             "\r\n\r\n".encode())
                await writer.drain()
            await asyncio.sleep(0.05)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(login_then_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    lost: list[bool] = []
    ready: list[bool] = []

    async def on_ready() -> None:
        ready.append(True)

    ami = AmiClient(AmiSettings(port=port, reconnect_min=0.05, reconnect_max=0.1),
                    SecretStr("s"), on_ready=on_ready, on_lost=lambda: lost.append(True))
    try:
        await ami.start()
        assert ready == [True] and lost == []
        async with asyncio.timeout(5):
            while len(ready) < 2 or not lost:
                await asyncio.sleep(0.01)
    finally:
        await ami.close()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


def test_event_headers_keep_colons_in_values() -> None:
    assert event_headers("Event: X\r\nData: a: b\r\nEmpty: \r\nnoise") == {
        "Event": "X", "Data": "a: b", "Empty": ""}
