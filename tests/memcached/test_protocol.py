"""The sans-io parser: every command, every error line, noreply, pipelining,
chunking, swallowing and the line-length rules -- on bytes alone."""

from __future__ import annotations

import pytest

from examples.memcached import protocol as p


def parse(*chunks: bytes, item_size_max: int = 1024 * 1024) -> list[p.Request]:
    parser = p.Parser(item_size_max=item_size_max)
    return p.iter_requests(parser, chunks)


def only(data: bytes) -> p.Request:
    [request] = parse(data)
    return request


# -- numbers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "value"),
    [
        (b"0", 0),
        (b"42", 42),
        (b"-7", -7),
        (b"+7", 7),
        (b"\t7", 7),
        (b"7\tjunk", 7),
        (b"7\rjunk", 7),
        (b"2147483647", 2147483647),
        (b"2147483648", -2147483648),
        (b"4294967297", 1),
        (b"9223372036854775807", -1),
        (b"9223372036854775808", None),
        (b"x", None),
        (b"7x", None),
        (b"", None),
        (b"-", None),
        (b"0x10", None),
    ],
)
def test_strtol32_reads_like_c_and_wraps_to_32_bits(token: bytes, value: int | None) -> None:
    assert p.strtol32(token) == value


@pytest.mark.parametrize(
    ("token", "value"),
    [
        (b"0", 0),
        (b"-0", 0),
        (b"4294967295", 4294967295),
        (b"4294967296", 0),
        (b"-1", None),
        (b"-18446744073709551615", 1),
        (b"18446744073709551616", None),
    ],
)
def test_strtoul32_refuses_negatives_that_do_not_fit_and_truncates(
    token: bytes, value: int | None
) -> None:
    assert p.strtoul32(token) == value


def test_strtoull_covers_the_whole_unsigned_64_bit_range() -> None:
    assert p.strtoull(b"18446744073709551615") == 2**64 - 1
    assert p.strtoull(b"18446744073709551616") is None
    assert p.strtoull(b"-1") is None


# -- retrieval -----------------------------------------------------------------


def test_get_with_many_keys_keeps_their_order() -> None:
    assert only(b"get a b c a\r\n") == p.Retrieve((b"a", b"b", b"c", b"a"))


def test_gets_asks_for_cas() -> None:
    assert only(b"gets a\r\n") == p.Retrieve((b"a",), with_cas=True)


def test_gat_and_gats_take_an_exptime_before_the_keys() -> None:
    assert only(b"gat 10 a b\r\n") == p.Retrieve((b"a", b"b"), exptime=10)
    assert only(b"gats -1 a\r\n") == p.Retrieve((b"a",), with_cas=True, exptime=-1)
    assert only(b"gat 10\r\n") == p.Retrieve((), exptime=10)


def test_gat_with_a_bad_exptime_is_refused() -> None:
    assert only(b"gat x a\r\n") == p.Invalid(b"CLIENT_ERROR invalid exptime argument")


def test_get_walks_more_keys_than_memcached_tokenizes_at_once() -> None:
    keys = [b"k%d" % i for i in range(100)]
    assert only(b"get " + b" ".join(keys) + b"\r\n") == p.Retrieve(tuple(keys))


def test_get_stops_at_a_key_longer_than_250_bytes() -> None:
    request = only(b"get a " + b"k" * 251 + b" b\r\n")
    assert request == p.Retrieve((b"a",), key_error=True)
    assert only(b"get " + b"k" * 250 + b"\r\n") == p.Retrieve((b"k" * 250,))


def test_get_without_keys_is_an_error_and_so_is_bget() -> None:
    assert only(b"get\r\n") == p.Invalid(b"ERROR")
    assert only(b"get \r\n") == p.Invalid(b"ERROR")
    assert only(b"bget\r\n") == p.Invalid(b"ERROR")
    assert only(b"bget a\r\n") == p.Retrieve((b"a",))


# -- storage ---------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["set", "add", "replace", "append", "prepend"])
def test_storage_commands_read_their_data_block(verb: p.StoreVerb) -> None:
    line = b"%s k 5 100 3\r\nabc\r\n" % verb.encode()
    assert only(line) == p.Store(verb, b"k", 5, 100, b"abc")


def test_cas_reads_its_unique_and_noreply() -> None:
    assert only(b"cas k 1 2 3 99 noreply\r\nabc\r\n") == p.Store(
        "cas", b"k", 1, 2, b"abc", cas_unique=99, noreply=True
    )


def test_a_data_block_may_hold_any_bytes_including_crlf() -> None:
    assert only(b"set k 0 0 4\r\n\r\n\r\n\r\n") == p.Store("set", b"k", 0, 0, b"\r\n\r\n")


def test_a_zero_length_value_is_fine() -> None:
    assert only(b"set k 0 0 0\r\n\r\n") == p.Store("set", b"k", 0, 0, b"")


def test_storage_arity_errors_are_plain_error() -> None:
    assert only(b"set k 0 0\r\n") == p.Invalid(b"ERROR")
    assert only(b"cas k 0 0 1\r\n") == p.Invalid(b"ERROR")
    assert only(b"set k 0 0 1 noreply extra\r\n") == p.Invalid(b"ERROR")


def test_an_extra_token_that_is_not_noreply_is_ignored() -> None:
    assert only(b"set k 0 0 1 junk\r\nx\r\n") == p.Store("set", b"k", 0, 0, b"x")


@pytest.mark.parametrize(
    "line",
    [
        b"set k x 0 1",
        b"set k 0 x 1",
        b"set k 0 0 x",
        b"set k 0 0 -1",
        b"set k -1 0 1",
        b"cas k 0 0 1 x",
        b"set " + b"k" * 251 + b" 0 0 1",
    ],
)
def test_malformed_storage_lines_are_bad_command_line_format(line: bytes) -> None:
    assert parse(line + b"\r\n") == [p.Invalid(b"CLIENT_ERROR bad command line format")]


def test_a_malformed_storage_line_does_not_swallow_its_data() -> None:
    # memcached then reads the would-be data as a command line.
    assert parse(b"set k 0 0 -1\r\nget k\r\n") == [
        p.Invalid(b"CLIENT_ERROR bad command line format"),
        p.Retrieve((b"k",)),
    ]


def test_noreply_silences_the_error_of_a_malformed_storage_line() -> None:
    assert only(b"set k 0 0 noreply\r\n") == p.Invalid(
        b"CLIENT_ERROR bad command line format", noreply=True
    )


def test_numbers_wrap_as_in_memcached() -> None:
    assert only(b"set k 4294967296 0 4294967297\r\nx\r\n") == p.Store("set", b"k", 0, 0, b"x")


def test_a_bad_data_chunk_consumes_exactly_the_announced_bytes() -> None:
    assert parse(b"set k 0 0 1\r\nxyz\r\n") == [
        p.Invalid(b"CLIENT_ERROR bad data chunk", counts="cmd_set"),
        p.Invalid(b"ERROR"),
    ]


def test_a_bad_data_chunk_honours_noreply() -> None:
    assert parse(b"set k 0 0 1 noreply\r\nxyz") == [
        p.Invalid(b"CLIENT_ERROR bad data chunk", noreply=True, counts="cmd_set")
    ]


def test_an_item_over_the_size_limit_is_refused_and_its_data_swallowed() -> None:
    parser = p.Parser(item_size_max=1000)
    head = b"set k 0 0 2000\r\n"
    assert parser.feed(head + b"x" * 500) == [p.StoreTooLarge("set", b"k")]
    assert parser.buffered == 0
    assert parser.feed(b"x" * 1500) == []
    assert parser.buffered == 0
    assert parser.feed(b"\r\nget k\r\n") == [p.Retrieve((b"k",))]


def test_the_size_limit_counts_memcacheds_item_header() -> None:
    # 48 header + 1 key + 1 + 10 value + 2 + 8 cas = 70 bytes.
    assert parse(b"set k 0 0 10\r\n0123456789\r\n", item_size_max=70)[0] == p.Store(
        "set", b"k", 0, 0, b"0123456789"
    )
    assert parse(b"set k 0 0 10\r\n0123456789\r\n", item_size_max=69) == [
        p.StoreTooLarge("set", b"k")
    ]
    # Nonzero client flags take 4 more bytes.
    assert parse(b"set k 1 0 10\r\n0123456789\r\n", item_size_max=70) == [
        p.StoreTooLarge("set", b"k")
    ]


def test_item_total_size_matches_memcacheds_bytes_statistic() -> None:
    # memcached reports "bytes 61" for key "a", value "x", flags 0.
    assert p.item_total_size(1, 0, 3) == 61


# -- other commands ----------------------------------------------------------------


def test_delete_accepts_a_zero_hold_time_and_noreply() -> None:
    assert only(b"delete k\r\n") == p.Delete(b"k")
    assert only(b"delete k 0\r\n") == p.Delete(b"k")
    assert only(b"delete k noreply\r\n") == p.Delete(b"k", noreply=True)
    assert only(b"delete k 0 noreply\r\n") == p.Delete(b"k", noreply=True)


def test_delete_with_a_hold_time_gets_the_usage_message() -> None:
    usage = b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
    assert only(b"delete k 1\r\n") == p.Invalid(usage)
    assert only(b"delete k x noreply\r\n") == p.Invalid(usage, noreply=True)
    assert only(b"delete\r\n") == p.Invalid(b"ERROR")
    assert only(b"delete k 0 0 0\r\n") == p.Invalid(b"ERROR")


def test_incr_and_decr() -> None:
    assert only(b"incr k 5\r\n") == p.Arithmetic(b"k", 5, incr=True)
    assert only(b"decr k 18446744073709551615 noreply\r\n") == p.Arithmetic(
        b"k", 2**64 - 1, incr=False, noreply=True
    )


@pytest.mark.parametrize("delta", [b"x", b"-1", b"18446744073709551616", b"1.5"])
def test_a_non_numeric_delta_is_refused(delta: bytes) -> None:
    assert only(b"incr k " + delta + b"\r\n") == p.Invalid(
        b"CLIENT_ERROR invalid numeric delta argument"
    )


def test_touch() -> None:
    assert only(b"touch k 10\r\n") == p.Touch(b"k", 10)
    assert only(b"touch k x noreply\r\n") == p.Invalid(
        b"CLIENT_ERROR invalid exptime argument", noreply=True
    )
    assert only(b"touch k\r\n") == p.Invalid(b"ERROR")


def test_flush_all_forms() -> None:
    assert only(b"flush_all\r\n") == p.FlushAll()
    assert only(b"flush_all 10\r\n") == p.FlushAll(10)
    assert only(b"flush_all noreply\r\n") == p.FlushAll(noreply=True)
    assert only(b"flush_all 10 noreply\r\n") == p.FlushAll(10, noreply=True)
    assert only(b"flush_all 0 0\r\n") == p.FlushAll(0)
    assert only(b"flush_all x\r\n") == p.Invalid(
        b"CLIENT_ERROR invalid exptime argument", counts="cmd_flush"
    )
    assert only(b"flush_all 1 2 3\r\n") == p.Invalid(b"ERROR")


def test_stats_version_verbosity_quit() -> None:
    assert only(b"stats\r\n") == p.Stats()
    assert only(b"stats items\r\n") == p.Stats((b"items",))
    assert only(b"version\r\n") == p.Version()
    assert only(b"verbosity 1\r\n") == p.Verbosity(1)
    assert only(b"verbosity 1 noreply\r\n") == p.Verbosity(1, noreply=True)
    assert only(b"verbosity x\r\n") == p.Invalid(b"CLIENT_ERROR bad command line format")
    assert only(b"verbosity\r\n") == p.Invalid(b"ERROR")
    assert only(b"shutdown\r\n") == p.Invalid(b"ERROR: shutdown not enabled")


def test_cache_memlimit_checks_its_range() -> None:
    assert only(b"cache_memlimit 100\r\n") == p.CacheMemlimit(100)
    assert only(b"cache_memlimit 7\r\n") == p.Invalid(
        b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m"
    )
    assert only(b"cache_memlimit 2000000000\r\n") == p.Invalid(
        b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes"
    )


def test_quit_stops_the_parser() -> None:
    parser = p.Parser()
    assert parser.feed(b"version\r\nquit\r\nversion\r\n") == [p.Version(), p.Quit()]
    assert parser.closed
    assert parser.feed(b"version\r\n") == []


@pytest.mark.parametrize(
    "line", [b"", b" ", b"\r", b"x", b"GET a", b"gett a", b"sett k 0 0 1", b"mz k"]
)
def test_unknown_or_empty_commands_are_error(line: bytes) -> None:
    assert only(line + b"\r\n") == p.Invalid(b"ERROR")


def test_a_stray_http_request_closes_silently() -> None:
    assert parse(b"GET / HTTP/1.1\r\nversion\r\n") == [p.Close("HTTP request")]


# -- line handling -------------------------------------------------------------------


def test_lines_may_end_with_a_bare_newline() -> None:
    assert parse(b"get a\nget b\r\n") == [p.Retrieve((b"a",)), p.Retrieve((b"b",))]


def test_tokens_are_split_on_spaces_only() -> None:
    assert only(b"  get   a\tb  c \r\n") == p.Retrieve((b"a\tb", b"c"))


def test_a_nul_byte_ends_the_line_as_in_c() -> None:
    assert only(b"get a\x00b c\r\n") == p.Retrieve((b"a",))


def test_a_line_without_newline_past_2048_bytes_closes_the_connection() -> None:
    parser = p.Parser()
    assert parser.feed(b"x" * 2048) == []
    assert parser.feed(b"x") == [p.Close("line too long")]
    assert parser.closed and parser.buffered == 0


def test_a_long_multiget_line_is_allowed_up_to_the_bound() -> None:
    parser = p.Parser(max_multiget_line=10_000)
    keys = b" ".join(b"key%04d" % i for i in range(1000))
    line = b"get " + keys
    assert parser.feed(line[:9000]) == []
    assert parser.feed(line[9000:] + b"\r\n") == [p.Retrieve(tuple(keys.split()))]


def test_a_multiget_line_past_the_bound_gets_out_of_memory_and_closes() -> None:
    parser = p.Parser(max_multiget_line=5000)
    assert parser.feed(b"get " + b"k " * 3000) == [
        p.Invalid(b"SERVER_ERROR out of memory reading request"),
        p.Close("multiget line too long"),
    ]


def test_a_complete_line_longer_than_memcacheds_read_buffer_closes() -> None:
    assert parse(b"set " + b"k" * 20000 + b" 0 0 1\r\n") == [p.Close("line too long")]


def test_a_complete_long_line_within_the_read_buffer_is_processed() -> None:
    assert parse(b"set " + b"k" * 3000 + b" 0 0 1\r\nx\r\n") == [
        p.Invalid(b"CLIENT_ERROR bad command line format"),
        p.Invalid(b"ERROR"),
    ]


def test_more_than_23_tokens_fail_the_arity_check() -> None:
    assert only(b"set k 0 0 1" + b" x" * 20 + b"\r\n") == p.Invalid(b"ERROR")


# -- pipelining and chunking -------------------------------------------------------------

PIPELINE = (
    b"set a 0 0 3\r\nabc\r\nget a b\r\nincr n 1\r\ndelete a noreply\r\n"
    b"cas a 1 2 3 4\r\nx\r\n\r\ntouch a 5\r\nmn\r\nflush_all\r\nversion\r\n"
)


def test_pipelined_requests_come_out_in_order() -> None:
    assert parse(PIPELINE) == [
        p.Store("set", b"a", 0, 0, b"abc"),
        p.Retrieve((b"a", b"b")),
        p.Arithmetic(b"n", 1, incr=True),
        p.Delete(b"a", noreply=True),
        p.Store("cas", b"a", 1, 2, b"x\r\n", cas_unique=4),
        p.Touch(b"a", 5),
        p.MetaNoop(),
        p.FlushAll(),
        p.Version(),
    ]


def test_byte_at_a_time_feeding_gives_the_same_requests() -> None:
    whole = parse(PIPELINE)
    assert parse(*(PIPELINE[i : i + 1] for i in range(len(PIPELINE)))) == whole


def test_empty_chunks_are_harmless() -> None:
    assert parse(b"", b"get a", b"", b"\r\n", b"") == [p.Retrieve((b"a",))]


# -- meta commands ------------------------------------------------------------------------


def test_meta_get_collects_its_flags() -> None:
    request = only(b"mg k v c t Oab q T30 N10\r\n")
    assert isinstance(request, p.MetaGet)
    assert request.key == b"k"
    flags = request.flags
    assert flags.value and flags.no_reply
    assert (flags.exptime, flags.vivify_exptime) == (30, 10)
    assert flags.tokens == (b"v", b"c", b"t", b"Oab", b"q", b"T30", b"N10")


def test_meta_set_reads_its_data_and_mode() -> None:
    request = only(b"ms k 2 MA F5 T9 C7 I\r\nhi\r\n")
    assert isinstance(request, p.MetaSet)
    assert (request.key, request.value) == (b"k", b"hi")
    flags = request.flags
    assert (flags.mode, flags.client_flags, flags.exptime, flags.cas) == (ord("A"), 5, 9, 7)
    assert flags.set_stale


def test_meta_binary_keys_are_base64_decoded() -> None:
    request = only(b"mg YWJj b v\r\n")
    assert isinstance(request, p.MetaGet)
    assert request.key == b"abc" and request.flags.key_binary


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"mg k v v", b"CLIENT_ERROR duplicate flag"),
        (b"mg k z", b"CLIENT_ERROR invalid flag"),
        (b"mg k Tx", b"CLIENT_ERROR bad token in command line format"),
        (b"mg !!! b", b"CLIENT_ERROR error decoding key"),
        (b"mg " + b"k" * 251, b"CLIENT_ERROR bad command line format"),
        (b"mg k" + b" v" * 19, b"CLIENT_ERROR options flags are too long"),
        (b"md k z", b"CLIENT_ERROR invalid or duplicate flag"),
        (b"ma k Mx", b"CLIENT_ERROR invalid mode for ma M token"),
        (b"ma k MII", b"CLIENT_ERROR invalid or duplicate flag"),
        (b"ms k", b"CLIENT_ERROR bad command line format"),
        (b"ms k x", b"CLIENT_ERROR bad command line format"),
        (b"mg", b"ERROR"),
    ],
)
def test_meta_errors(line: bytes, error: bytes) -> None:
    assert only(line + b"\r\n") == p.Invalid(error)


def test_a_refused_meta_set_swallows_its_data() -> None:
    assert parse(b"ms k 2 MZ\r\nhi\r\nmn\r\n") == [
        p.Invalid(b"CLIENT_ERROR invalid mode for ms M token"),
        p.MetaNoop(),
    ]
    assert parse(b"ms k 2 O" + b"x" * 40 + b"\r\nhi\r\nmn\r\n") == [
        p.Invalid(b"CLIENT_ERROR opaque token too long"),
        p.MetaNoop(),
    ]


def test_meta_debug_takes_a_binary_flag() -> None:
    assert only(b"me YWJj b\r\n") == p.MetaDebug(b"abc", key_binary=True)
    assert only(b"me\r\n") == p.Invalid(b"CLIENT_ERROR bad command line format")
