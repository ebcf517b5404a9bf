"""The interface's ARP: answering, learning, resolving with retries, the
pending queue, expiry and probes, the gratuitous announcement."""

from __future__ import annotations

import pytest

from shardio_net.native.wire.arp import REPLY, REQUEST
from shardio_net.native.wire.ethernet import BROADCAST, ETHERTYPE_IPV4
from shardio_net.native.wire.ipv4 import PROTOCOL_UDP

from ._iface import (
    MAC_GATEWAY,
    MAC_OTHER,
    MAC_PEER,
    MAC_US,
    OTHER,
    PEER,
    US,
    ZERO_MAC,
    arp_frame,
    arp_reply,
    drain,
    echo_request_frame,
    interface,
    resolved,
)


def send_numbered(iface, number: int, now: float, dst: int = PEER) -> bool:
    """A UDP-sized datagram whose payload is ``number``."""
    return iface.send_ip(dst, PROTOCOL_UDP, [number.to_bytes(4, "big")], now)


def numbers(frames) -> list[int]:
    return [int.from_bytes(frame.ip.payload, "big") for frame in frames if frame.ip]


def test_request_for_our_address_is_answered_with_a_unicast_reply():
    iface = interface()

    assert iface.receive(arp_frame(REQUEST, MAC_PEER, PEER, US), 0.0) is None

    [reply] = drain(iface)
    assert reply.ethernet.dst == MAC_PEER
    assert reply.ethernet.src == MAC_US
    assert reply.arp.operation == REPLY
    assert (reply.arp.sender_mac, reply.arp.sender_ip) == (MAC_US, US)
    assert (reply.arp.target_mac, reply.arp.target_ip) == (MAC_PEER, PEER)
    stats = iface.statistics()
    assert (stats.arp_requests_received, stats.arp_replies_sent) == (1, 1)


def test_request_for_another_address_is_not_answered():
    iface = interface()

    iface.receive(arp_frame(REQUEST, MAC_PEER, PEER, OTHER), 0.0)

    assert drain(iface) == []
    assert iface.statistics().dropped == {"arp: for another host": 1}


def test_request_aimed_at_us_teaches_the_asker_so_our_answer_needs_no_request():
    iface = interface()
    iface.receive(arp_frame(REQUEST, MAC_PEER, PEER, US), 0.0)
    drain(iface)

    iface.receive(echo_request_frame(1, 1, b"ping"), 0.5)

    [reply] = drain(iface)
    assert reply.ethernet.dst == MAC_PEER
    assert reply.icmp is not None
    assert iface.statistics().arp_requests_sent == 0


def test_sending_to_an_unknown_neighbour_asks_by_broadcast_and_sends_on_the_reply():
    iface = interface()

    assert send_numbered(iface, 1, 0.0)
    [request] = drain(iface)
    assert request.ethernet.dst == BROADCAST
    assert request.arp.operation == REQUEST
    assert (request.arp.sender_mac, request.arp.sender_ip) == (MAC_US, US)
    assert (request.arp.target_mac, request.arp.target_ip) == (ZERO_MAC, PEER)

    iface.receive(arp_reply(MAC_PEER, PEER), 0.01)

    [datagram] = drain(iface)
    assert datagram.ethernet.dst == MAC_PEER
    assert datagram.ethernet.ethertype == ETHERTYPE_IPV4
    assert numbers([datagram]) == [1]
    stats = iface.statistics()
    assert (stats.arp_requests_sent, stats.arp_replies_received) == (1, 1)
    assert stats.arp_pending_frames == 0


def test_a_lost_first_request_is_sent_again_after_the_retry_interval():
    iface = interface(arp_retry_interval=1.0)
    send_numbered(iface, 1, 0.0)
    drain(iface)  # the first request, lost
    assert iface.next_deadline() == 1.0

    iface.on_timer(0.99)
    assert drain(iface) == []
    iface.on_timer(1.0)
    [again] = drain(iface)
    assert again.arp.operation == REQUEST
    assert again.arp.target_ip == PEER
    assert again.ethernet.dst == BROADCAST

    iface.receive(arp_reply(MAC_PEER, PEER), 1.2)
    assert numbers(drain(iface)) == [1]
    assert iface.statistics().arp_requests_sent == 2


def test_resolution_gives_up_after_the_retries_and_drops_the_queued_frames():
    iface = interface(arp_retries=2, arp_retry_interval=1.0)
    send_numbered(iface, 1, 0.0)
    send_numbered(iface, 2, 0.5)
    requests = drain(iface)
    for now in (1.0, 2.0, 3.0):
        assert iface.next_deadline() == now
        iface.on_timer(now)
        requests += drain(iface)

    assert [frame.arp.target_ip for frame in requests] == [PEER] * 3
    stats = iface.statistics()
    assert stats.arp_resolution_failures == 1
    assert stats.dropped == {"arp: no reply": 2}
    assert (stats.arp_entries, stats.arp_pending_frames) == (0, 0)
    assert iface.next_deadline() == float("inf")
    # A late reply does not bring the frames back, nor makes an entry.
    iface.receive(arp_reply(MAC_PEER, PEER), 3.5)
    assert drain(iface) == []
    assert iface.statistics().arp_entries == 0


def test_the_next_datagram_after_a_failure_starts_resolving_again():
    iface = interface(arp_retries=0)
    send_numbered(iface, 1, 0.0)
    iface.on_timer(1.0)
    drain(iface)

    send_numbered(iface, 2, 5.0)
    [request] = drain(iface)
    assert request.arp.target_ip == PEER
    iface.receive(arp_reply(MAC_PEER, PEER), 5.1)
    assert numbers(drain(iface)) == [2]


def test_queued_frames_are_sent_in_order_when_the_address_resolves():
    iface = interface()
    for number in range(5):
        assert send_numbered(iface, number, number * 0.1)
    drain(iface)
    assert iface.statistics().arp_pending_frames == 5

    iface.receive(arp_reply(MAC_PEER, PEER), 0.6)

    assert numbers(drain(iface)) == [0, 1, 2, 3, 4]


def test_the_pending_queue_is_bounded_and_drops_its_oldest_frame():
    iface = interface(arp_pending_limit=3)
    for number in range(5):
        assert send_numbered(iface, number, 0.0)

    assert iface.statistics().arp_pending_frames == 3
    assert iface.statistics().dropped == {"arp: pending queue full (oldest frame dropped)": 2}
    iface.receive(arp_reply(MAC_PEER, PEER), 0.1)
    assert numbers(drain(iface)) == [2, 3, 4]


def test_queued_datagrams_are_copies_the_caller_may_change():
    iface = interface()
    buffer = bytearray(b"\x00\x00\x00\x07")
    iface.send_ip(PEER, PROTOCOL_UDP, [buffer], 0.0)
    buffer[3] = 9

    iface.receive(arp_reply(MAC_PEER, PEER), 0.1)

    assert numbers(drain(iface)) == [7]


def test_only_one_resolution_runs_per_address():
    iface = interface()
    send_numbered(iface, 1, 0.0)
    send_numbered(iface, 2, 0.1)

    assert len(drain(iface)) == 1
    assert iface.statistics().arp_requests_sent == 1


def test_an_unsolicited_reply_does_not_create_an_entry():
    iface = interface()
    iface.receive(arp_reply(MAC_PEER, PEER), 0.0)

    send_numbered(iface, 1, 0.1)

    [request] = drain(iface)
    assert request.arp is not None
    assert request.arp.target_ip == PEER


def test_a_request_for_another_host_does_not_create_an_entry():
    iface = interface()
    iface.receive(arp_frame(REQUEST, MAC_PEER, PEER, OTHER), 0.0)

    send_numbered(iface, 1, 0.1)

    [request] = drain(iface)
    assert request.arp is not None


def test_a_gratuitous_arp_updates_a_known_neighbours_mac():
    iface = resolved(interface())
    announcement = arp_frame(REQUEST, MAC_OTHER, PEER, PEER)

    iface.receive(announcement, 1.0)
    send_numbered(iface, 1, 1.1)

    [datagram] = drain(iface)
    assert datagram.ethernet.dst == MAC_OTHER
    assert iface.statistics().dropped == {}


def test_a_reply_to_our_request_that_changes_the_mac_is_followed():
    iface = resolved(interface())

    iface.receive(arp_reply(MAC_OTHER, PEER), 1.0)
    send_numbered(iface, 1, 1.1)

    assert [frame.ethernet.dst for frame in drain(iface)] == [MAC_OTHER]


def test_an_entry_past_its_lifetime_is_still_used_and_probed_by_unicast():
    iface = resolved(interface(arp_entry_lifetime=60.0, arp_retry_interval=1.0))
    send_numbered(iface, 1, 59.0)
    assert [frame.ip is not None for frame in drain(iface)] == [True]

    send_numbered(iface, 2, 60.0)

    probe, datagram = drain(iface)
    assert probe.arp.operation == REQUEST
    assert probe.ethernet.dst == MAC_PEER
    assert probe.arp.target_ip == PEER
    assert datagram.ethernet.dst == MAC_PEER
    assert numbers([datagram]) == [2]
    # One probe at a time, however many datagrams.
    send_numbered(iface, 3, 60.5)
    assert numbers(drain(iface)) == [3]
    assert iface.statistics().arp_requests_sent == 1


def test_an_answered_probe_makes_the_entry_fresh_again():
    iface = resolved(interface(arp_entry_lifetime=60.0))
    send_numbered(iface, 1, 60.0)
    drain(iface)

    iface.receive(arp_reply(MAC_PEER, PEER), 60.1)

    assert iface.next_deadline() == float("inf")
    send_numbered(iface, 2, 119.0)
    assert numbers(drain(iface)) == [2]
    assert iface.statistics().arp_requests_sent == 1


def test_an_unanswered_probe_removes_the_entry_and_the_next_datagram_broadcasts():
    iface = resolved(interface(arp_entry_lifetime=60.0, arp_retries=1, arp_retry_interval=1.0))
    send_numbered(iface, 1, 60.0)
    probes = [frame for frame in drain(iface) if frame.arp]
    iface.on_timer(61.0)
    probes += drain(iface)
    iface.on_timer(62.0)
    assert drain(iface) == []
    assert [probe.ethernet.dst for probe in probes] == [MAC_PEER, MAC_PEER]
    assert iface.statistics().arp_entries == 0
    assert iface.statistics().arp_resolution_failures == 1

    send_numbered(iface, 2, 63.0)

    [request] = drain(iface)
    assert request.ethernet.dst == BROADCAST
    assert request.arp.target_ip == PEER


def test_an_idle_entry_past_its_lifetime_sends_nothing():
    iface = resolved(interface(arp_entry_lifetime=60.0))

    assert iface.next_deadline() == float("inf")
    iface.on_timer(1000.0)
    assert drain(iface) == []


def test_gratuitous_arp_is_sent_at_start():
    iface = interface(gratuitous_arp=True)

    [announcement] = drain(iface)

    assert announcement.ethernet.dst == BROADCAST
    assert announcement.ethernet.src == MAC_US
    assert announcement.arp.operation == REQUEST
    assert (announcement.arp.sender_mac, announcement.arp.sender_ip) == (MAC_US, US)
    assert (announcement.arp.target_mac, announcement.arp.target_ip) == (ZERO_MAC, US)
    assert iface.statistics().arp_requests_sent == 1


def test_no_gratuitous_arp_when_not_configured():
    assert drain(interface(gratuitous_arp=False)) == []


def test_a_probe_for_our_address_from_0_0_0_0_is_answered_and_teaches_nothing():
    iface = interface()

    iface.receive(arp_frame(REQUEST, MAC_PEER, 0, US), 0.0)

    [reply] = drain(iface)
    assert reply.ethernet.dst == MAC_PEER
    assert (reply.arp.operation, reply.arp.target_ip) == (REPLY, 0)
    assert iface.statistics().arp_entries == 0


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (arp_frame(REQUEST, MAC_OTHER, US, US), "arp: another host claims our address"),
        (
            arp_frame(REQUEST, b"\x03" + MAC_PEER[1:], PEER, US, eth_src=MAC_PEER),
            "arp: group address as sender MAC",
        ),
        (arp_frame(REQUEST, MAC_PEER, 0xC0000201, US), "arp: sender not in our subnet"),
        (arp_frame(REQUEST, MAC_PEER, 0x0A0000FF, US), "arp: sender not in our subnet"),
        (arp_frame(REQUEST, MAC_PEER, 0, OTHER), "arp: probe for another address"),
    ],
)
def test_suspect_arp_is_counted_and_neither_answered_nor_learned(frame, reason):
    iface = interface()

    iface.receive(frame, 0.0)

    assert drain(iface) == []
    stats = iface.statistics()
    assert stats.dropped == {reason: 1}
    assert stats.arp_entries == 0


def test_a_full_cache_evicts_the_stalest_resolved_entry():
    iface = interface(arp_cache_limit=2)
    iface.receive(arp_frame(REQUEST, MAC_PEER, PEER, US), 0.0)
    iface.receive(arp_frame(REQUEST, MAC_OTHER, OTHER, US), 1.0)
    drain(iface)

    send_numbered(iface, 1, 2.0, dst=0x0A000004)

    stats = iface.statistics()
    assert (stats.arp_entries, stats.arp_pending_frames) == (2, 1)
    send_numbered(iface, 2, 2.1, dst=OTHER)
    send_numbered(iface, 3, 2.2, dst=PEER)
    sent = drain(iface)
    assert [frame.ethernet.dst for frame in sent[1:]] == [MAC_OTHER, BROADCAST]


def test_a_cache_full_of_unresolved_addresses_refuses_another():
    iface = interface(arp_cache_limit=1)
    assert send_numbered(iface, 1, 0.0, dst=PEER)

    assert not send_numbered(iface, 2, 0.0, dst=OTHER)

    assert iface.statistics().dropped == {"arp: cache full": 1}


def test_the_gateway_is_resolved_for_off_link_destinations():
    iface = interface()

    send_numbered(iface, 1, 0.0, dst=0xC0000207)
    [request] = drain(iface)
    assert request.arp.target_ip == 0x0A0000FE
    iface.receive(arp_reply(MAC_GATEWAY, 0x0A0000FE), 0.1)

    [datagram] = drain(iface)
    assert datagram.ethernet.dst == MAC_GATEWAY
    assert datagram.ip.dst == 0xC0000207
