"""The fan-out feed (``fanout/feed.py``): lines out and back, what is refused, and the state both
ends keep (live tokens; the latest push per rank and name, in push order)."""

from __future__ import annotations

import pytest

from callcenter.errors import FanoutError
from callcenter.fanout.feed import Allow, End, FeedDecoder, FeedState, Push, decode, encode

BOARD = '{"v":1,"type":"event","event":"wallboard","data":{"seats":[]}}'


@pytest.mark.parametrize("message", [
    Allow("tok_EN-1", 1, "9001"), End("tok_EN-1"), Push(0, "queues", BOARD),
    Push(2, "wallboard", '{"text":"line\\nbreak 中文"}')])
def test_lines_round_trip(message: Allow | End | Push) -> None:
    line = encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line[:-1]) == message


@pytest.mark.parametrize("message", [
    Allow("two words", 1, "9001"), Allow("tok", 3, "9001"), Allow("tok", 1, "a b"),
    End(""), Push(0, "name with space", BOARD), Push(0, "queues", "a\nb"), Push(-1, "q", BOARD)])
def test_malformed_messages_are_refused_without_their_values(
        message: Allow | End | Push) -> None:
    with pytest.raises(FanoutError) as refused:
        encode(message)
    assert "two words" not in str(refused.value)


@pytest.mark.parametrize("line", [b"X 1", b"A tok 1", b"A tok 9 9001", b"E", b"P 1 wallboard",
                                  b"P x wallboard {}", b"\xff\xfe"])
def test_malformed_lines_are_refused(line: bytes) -> None:
    with pytest.raises(FanoutError):
        decode(line)


def test_decoder_keeps_a_partial_line_until_its_end() -> None:
    decoder = FeedDecoder()
    data = encode(Allow("t1", 0, "1001")) + encode(Push(0, "queues", BOARD))
    cut = len(data) - 5
    assert decoder.feed(data[:cut]) == [Allow("t1", 0, "1001")]
    assert decoder.feed(data[cut:]) == [Push(0, "queues", BOARD)]
    assert decoder.feed(b"") == []


def test_decoder_skips_a_line_over_the_limit_and_reads_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.fanout import feed
    monkeypatch.setattr(feed, "MAX_LINE", 30)
    decoder = FeedDecoder()
    assert decoder.feed(b"P 0 queues " + b"x" * 40) == []
    assert decoder.feed(b"y" * 40) == []                    # still the same line
    assert decoder.feed(b"zz\nE tok\n") == [End("tok")]
    assert decoder.errors == ["feed: a line over the limit"]


def test_decoder_skips_a_bad_line_and_reads_the_next_without_naming_the_line() -> None:
    decoder = FeedDecoder()
    assert decoder.feed(b"A secret-token 7 9001\nE tok\n") == [End("tok")]
    assert decoder.errors == ["feed: bad rank"]


def test_encode_refuses_what_the_relay_would_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.fanout import feed
    with pytest.raises(FanoutError, match="empty"):
        encode(Push(0, "queues", ""))
    monkeypatch.setattr(feed, "MAX_LINE", 30)
    with pytest.raises(FanoutError, match="over the limit"):
        encode(Push(0, "queues", "x" * 40))


def test_state_keeps_live_tokens_and_the_latest_push_of_each_kind_in_push_order() -> None:
    state = FeedState()
    messages: list[Allow | End | Push] = [
        Allow("a", 0, "1001"), Allow("s", 1, "9001"), Push(1, "wallboard", "w1"),
        Push(0, "queues", "q1"), Push(1, "wallboard", "w2"), End("a")]
    for message in messages:
        state.apply(message)
    assert set(state.allowed) == {"s"}
    assert [p.text for p in state.visible(1)] == ["q1", "w2"]   # w2 pushed after q1
    assert [p.text for p in state.visible(0)] == ["q1"]
    replayed = FeedDecoder().feed(state.replay())
    assert replayed == [Allow("s", 1, "9001"), Push(0, "queues", "q1"),
                        Push(1, "wallboard", "w2")]
