"""The reply model the fuzzers check the engine with (``replies.py``) tells
well-formed reply streams from broken ones: a fuzzer is only as strong as it."""

from __future__ import annotations

import pytest

from examples.memcached import protocol as p

from .replies import split_replies


def requests(script: bytes) -> list[p.Request]:
    return p.iter_requests(p.Parser(), [script])


def test_a_stream_is_cut_into_one_reply_per_request() -> None:
    script = b"set a 0 0 1\r\nx\r\nget a b\r\ndelete b noreply\r\nincr a 1\r\nmn\r\n"
    data = b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n2\r\nMN\r\n"
    assert split_replies(requests(script), data) == [
        b"STORED\r\n",
        b"VALUE a 0 1\r\nx\r\nEND\r\n",
        b"",
        b"2\r\n",
        b"MN\r\n",
    ]


def test_a_reply_of_another_command_is_not_a_reply() -> None:
    with pytest.raises(AssertionError, match="no well-formed reply to request 1"):
        split_replies(requests(b"set a 0 0 1\r\nx\r\nincr a 1\r\n"), b"STORED\r\nSTORED\r\n")


def test_a_value_block_must_hold_as_many_bytes_as_it_says() -> None:
    with pytest.raises(AssertionError, match="no well-formed reply to request 0"):
        split_replies(requests(b"get a\r\n"), b"VALUE a 0 2\r\nx\r\nEND\r\n")


def test_values_come_for_the_keys_asked_in_their_order() -> None:
    asked = requests(b"gets a b\r\n")
    assert split_replies(asked, b"VALUE b 0 1 7\r\ny\r\nEND\r\n") == [
        b"VALUE b 0 1 7\r\ny\r\nEND\r\n"
    ]
    with pytest.raises(AssertionError):
        split_replies(asked, b"VALUE b 0 1 7\r\ny\r\nVALUE a 0 1 6\r\nx\r\nEND\r\n")
    with pytest.raises(AssertionError):  # gets: with the CAS value
        split_replies(asked, b"VALUE a 0 1\r\nx\r\nEND\r\n")


def test_noreply_means_no_reply_and_a_missing_reply_is_missing() -> None:
    with pytest.raises(AssertionError, match="bytes left after the replies"):
        split_replies(requests(b"set a 0 0 1 noreply\r\nx\r\n"), b"STORED\r\n")
    with pytest.raises(AssertionError, match="request 1"):
        split_replies(requests(b"version\r\nversion\r\n"), b"VERSION 1.6.18\r\n")


def test_a_quiet_meta_command_may_get_a_reply_or_none() -> None:
    asked = requests(b"mg a v q\r\nmg b v\r\nmn\r\n")
    assert split_replies(asked, b"EN\r\nMN\r\n") == [b"", b"EN\r\n", b"MN\r\n"]
    assert split_replies(asked, b"VA 1\r\nx\r\nEN\r\nMN\r\n") == [
        b"VA 1\r\nx\r\n",
        b"EN\r\n",
        b"MN\r\n",
    ]
    with pytest.raises(AssertionError):
        split_replies(asked, b"MN\r\n")
