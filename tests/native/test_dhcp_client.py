"""The DHCP client alone, scripted message by message with explicit times: a
scripted server answers (or does not), and each test checks what the client
sends, when, and what it tells its owner."""

from __future__ import annotations

import math
import random

import pytest

from shardio_net.native.dhcp import (
    DhcpClient,
    DhcpConfig,
    DhcpMessage,
    DhcpState,
    Lease,
    LeaseLost,
    LeaseObtained,
    dhcp_message,
    parse_dhcp,
)
from shardio_net.native.dhcp.client import LIMITED_BROADCAST
from shardio_net.native.dhcp.message import (
    ACK,
    BOOTREPLY,
    BOOTREQUEST,
    DISCOVER,
    NAK,
    OFFER,
    REQUEST,
)
from shardio_net.native.wire.ipv4 import parse_address

MAC = bytes.fromhex("020000000001")
SERVER = parse_address("10.99.0.1")
OTHER_SERVER = parse_address("10.99.0.3")
OFFERED = parse_address("10.99.0.57")
# No jitter: the retransmission times are exact.
EXACT = DhcpConfig(jitter=0.0)


def _client(config: DhcpConfig = EXACT, now: float = 0.0) -> DhcpClient:
    return DhcpClient(MAC, now, config=config, rng=random.Random(1))


def _sent(client: DhcpClient) -> list[tuple[int, DhcpMessage]]:
    return [(out.destination, parse_dhcp(out.payload)) for out in client.datagrams()]


def _one(client: DhcpClient) -> tuple[int, DhcpMessage]:
    [sent] = _sent(client)
    return sent


def _reply(request: DhcpMessage, kind: int, **fields: object) -> bytes:
    """A server's answer to ``request``: its xid and chaddr, and ``fields``."""
    settings: dict[str, object] = {
        "yiaddr": OFFERED,
        "server_id": SERVER,
        "subnet_mask": 0xFFFFFF00,
        "routers": (SERVER,),
        "lease_time": 3600,
    }
    if kind == NAK:
        settings = {"server_id": SERVER, "message": b"wrong network"}
    settings.update(fields)
    return dhcp_message(DhcpMessage(BOOTREPLY, kind, request.xid, request.chaddr, **settings))


def _bind(client: DhcpClient, now: float = 0.0, **ack: object) -> Lease:
    """DISCOVER, OFFER, REQUEST, ACK: the client is BOUND; its lease."""
    _, discover = _one(client)
    client.receive(_reply(discover, OFFER), now)
    _, request = _one(client)
    client.receive(_reply(request, ACK, **ack), now)
    [event] = client.events()
    assert isinstance(event, LeaseObtained)
    return event.lease


def test_discover_offer_request_ack_binds_the_offered_address() -> None:
    client = _client()
    destination, discover = _one(client)
    assert destination == LIMITED_BROADCAST
    assert (discover.op, discover.message_type, discover.ciaddr) == (BOOTREQUEST, DISCOVER, 0)
    assert discover.chaddr == MAC and discover.client_id == b"\x01" + MAC
    assert {1, 3, 51, 54, 58, 59} <= set(discover.parameter_requests)
    assert client.state is DhcpState.SELECTING

    client.receive(_reply(discover, OFFER), 0.5)
    destination, request = _one(client)
    assert destination == LIMITED_BROADCAST  # so the other servers see their offers declined
    assert (request.message_type, request.xid, request.ciaddr) == (REQUEST, discover.xid, 0)
    assert (request.requested_address, request.server_id) == (OFFERED, SERVER)
    assert client.state is DhcpState.REQUESTING

    client.receive(_reply(request, ACK, dns_servers=(SERVER,)), 0.6)
    assert client.events() == [
        LeaseObtained(
            Lease(
                address=OFFERED,
                prefix_length=24,
                gateway=SERVER,
                server=SERVER,
                acquired=0.5,  # the lease counts from the REQUEST, not the ACK
                lease_time=3600.0,
                renewal_time=1800.0,
                rebinding_time=3150.0,
                dns_servers=(SERVER,),
            )
        )
    ]
    assert client.state is DhcpState.BOUND
    assert client.next_deadline() == 0.5 + 1800.0
    assert client.datagrams() == []


def test_a_lost_offer_means_discovers_again_after_4_8_16_32_64_and_64_seconds() -> None:
    client = _client()
    first = _one(client)[1]
    times = []
    for _ in range(6):
        now = client.next_deadline()
        client.on_timer(now)
        _, discover = _one(client)
        assert discover.xid == first.xid  # the same exchange
        times.append(now)
    assert times == [4.0, 12.0, 28.0, 60.0, 124.0, 188.0]
    assert client.state is DhcpState.SELECTING
    assert client.statistics().discovers_sent == 7


def test_retransmissions_are_jittered_by_up_to_a_second() -> None:
    delays = set()
    for seed in range(20):
        client = DhcpClient(MAC, 0.0, rng=random.Random(seed))
        delays.add(client.next_deadline())
    assert all(3.0 <= delay <= 5.0 for delay in delays)
    assert len(delays) == 20  # clients that start together do not stay in step


def test_the_timer_does_nothing_before_its_deadline() -> None:
    client = _client()
    client.datagrams()
    client.on_timer(3.9)
    assert client.datagrams() == []


def test_a_lost_ack_means_requests_again_with_backoff_then_discovers_afresh() -> None:
    client = _client(DhcpConfig(jitter=0.0, request_retries=2))
    _, discover = _one(client)
    client.receive(_reply(discover, OFFER), 1.0)
    _one(client)
    times = []
    for _ in range(2):
        now = client.next_deadline()
        client.on_timer(now)
        _, request = _one(client)
        assert (request.message_type, request.requested_address) == (REQUEST, OFFERED)
        times.append(now)
    assert times == [5.0, 13.0]
    client.on_timer(client.next_deadline())  # 29: the retries are spent
    _, again = _one(client)
    assert again.message_type == DISCOVER and again.xid != discover.xid
    assert client.state is DhcpState.SELECTING


def test_a_nak_while_requesting_starts_over_at_once_and_with_backoff_when_it_repeats() -> None:
    client = _client()
    _, discover = _one(client)
    client.receive(_reply(discover, OFFER), 1.0)
    _, request = _one(client)
    client.receive(_reply(request, NAK), 1.5)
    _, discover = _one(client)
    assert discover.message_type == DISCOVER and client.state is DhcpState.SELECTING
    assert client.events() == []  # no lease was held: nothing lost

    client.receive(_reply(discover, OFFER), 2.0)
    _, request = _one(client)
    client.receive(_reply(request, NAK), 2.5)
    assert client.datagrams() == []  # the second refusal in a row: wait first
    assert client.state is DhcpState.INIT
    assert client.next_deadline() == 2.5 + 4.0
    client.on_timer(6.5)
    assert _one(client)[1].message_type == DISCOVER
    assert client.statistics().naks_received == 2


def test_a_lease_resets_the_backoff_of_refusals() -> None:
    client = _client()
    _, discover = _one(client)
    client.receive(_reply(discover, OFFER), 0.0)
    _, request = _one(client)
    client.receive(_reply(request, NAK), 0.0)
    _bind(client)
    # Lost at renewal by a NAK: a DISCOVER at once, as after the first refusal.
    client.on_timer(client.next_deadline())
    _, renew = _one(client)
    client.receive(_reply(renew, NAK), 1900.0)
    assert client.events() == [LeaseLost("the server refused to renew the lease (DHCPNAK)")]
    assert _one(client)[1].message_type == DISCOVER


def test_renewal_at_t1_is_unicast_to_the_server_from_the_leased_address() -> None:
    client = _client()
    lease = _bind(client)
    assert client.next_deadline() == lease.renew_at == 1800.0
    client.on_timer(1800.0)
    destination, renew = _one(client)
    assert destination == SERVER
    assert (renew.message_type, renew.ciaddr) == (REQUEST, OFFERED)
    assert (renew.requested_address, renew.server_id) == (None, None)  # RFC 2131 table 5
    assert client.state is DhcpState.RENEWING
    assert client.lease == lease  # still held while renewing

    client.receive(_reply(renew, ACK, lease_time=7200), 1800.2)
    [event] = client.events()
    assert isinstance(event, LeaseObtained)
    assert (event.lease.acquired, event.lease.lease_time) == (1800.0, 7200.0)
    assert client.state is DhcpState.BOUND
    assert client.next_deadline() == 1800.0 + 3600.0
    assert client.statistics().renewals == 1


def test_an_unanswered_renewal_is_repeated_then_rebinds_by_broadcast_at_t2() -> None:
    client = _client()
    _bind(client, lease_time=3600, renewal_time=1800, rebinding_time=3150)
    client.on_timer(1800.0)
    _, first = _one(client)
    # Half the time left until T2 (675 s), no less than 60 s.
    assert client.next_deadline() == 1800.0 + 675.0
    client.on_timer(2475.0)
    _, again = _one(client)
    assert again.xid == first.xid and client.state is DhcpState.RENEWING
    assert client.next_deadline() == 2475.0 + 337.5
    client.on_timer(2812.5)
    _one(client)
    assert client.next_deadline() == 2812.5 + 168.75
    for now, then in [(2981.25, 3065.625), (3065.625, 3125.625), (3125.625, 3150.0)]:
        client.on_timer(now)
        _one(client)
        # The 60 s minimum at 3065.625; never past T2 at 3125.625.
        assert client.next_deadline() == then

    client.on_timer(3150.0)
    destination, rebind = _one(client)
    assert destination == LIMITED_BROADCAST
    assert (rebind.ciaddr, rebind.server_id, rebind.requested_address) == (OFFERED, None, None)
    assert rebind.xid != first.xid
    assert client.state is DhcpState.REBINDING
    assert client.next_deadline() == 3150.0 + 225.0  # half the time left of the lease

    client.receive(_reply(rebind, ACK, server_id=OTHER_SERVER, routers=(OTHER_SERVER,)), 3151.0)
    [event] = client.events()
    assert isinstance(event, LeaseObtained)
    assert (event.lease.server, event.lease.gateway, event.lease.acquired) == (
        OTHER_SERVER,
        OTHER_SERVER,
        3150.0,
    )
    assert client.statistics().rebinds == 1


def test_a_lease_nobody_renews_expires_and_the_client_discovers_again() -> None:
    client = _client()
    _bind(client, lease_time=600)
    sent = 0
    while client.state is not DhcpState.SELECTING:
        now = client.next_deadline()
        client.on_timer(now)
        sent += len(client.datagrams())
        assert client.lease is not None or client.state is DhcpState.SELECTING
    assert now == 600.0
    assert client.events() == [LeaseLost("the lease expired")]
    assert client.lease is None
    assert sent >= 3  # a renewal at 300, a rebinding at 525, and the DISCOVER at 600
    assert client.statistics().leases_lost == 1


def test_a_nak_while_rebinding_loses_the_lease() -> None:
    client = _client()
    lease = _bind(client)
    client.on_timer(lease.renew_at)
    client.datagrams()
    client.on_timer(lease.rebind_at)
    _, rebind = _one(client)
    client.receive(_reply(rebind, NAK, server_id=OTHER_SERVER), lease.rebind_at + 1)
    assert client.events() == [LeaseLost("the server refused to renew the lease (DHCPNAK)")]
    assert _one(client)[1].message_type == DISCOVER


def test_a_late_timer_does_not_renew_a_lease_that_has_expired() -> None:
    client = _client()
    lease = _bind(client)
    client.on_timer(lease.expires_at + 5)
    assert client.events() == [LeaseLost("the lease expired")]
    assert _one(client)[1].message_type == DISCOVER


def test_init_reboot_asks_for_the_remembered_address_first() -> None:
    client = _client(DhcpConfig(jitter=0.0, requested_address=OFFERED))
    destination, request = _one(client)
    assert destination == LIMITED_BROADCAST
    assert (request.message_type, request.requested_address, request.server_id) == (
        REQUEST,
        OFFERED,
        None,
    )
    assert client.state is DhcpState.REBOOTING
    client.receive(_reply(request, ACK), 0.1)
    [event] = client.events()
    assert isinstance(event, LeaseObtained) and event.lease.address == OFFERED


def test_init_reboot_refused_falls_back_to_discover() -> None:
    client = _client(DhcpConfig(jitter=0.0, requested_address=OFFERED))
    _, request = _one(client)
    client.receive(_reply(request, NAK), 0.1)
    assert _one(client)[1].message_type == DISCOVER
    assert client.events() == []


def _selecting() -> tuple[DhcpClient, DhcpMessage]:
    client = _client()
    return client, _one(client)[1]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (lambda d: b"\x02" * 100, "dhcp: shorter than 240 bytes"),
        (
            lambda d: dhcp_message(DhcpMessage(BOOTREQUEST, OFFER, d.xid, MAC)),
            "dhcp: a request (another client's)",
        ),
        (
            lambda d: dhcp_message(DhcpMessage(BOOTREPLY, OFFER, d.xid ^ 1, MAC)),
            "dhcp: not an answer to our transaction",
        ),
        (
            lambda d: dhcp_message(DhcpMessage(BOOTREPLY, OFFER, d.xid, b"\x02" * 6)),
            "dhcp: not an answer to our transaction",
        ),
        (lambda d: _reply(d, OFFER, server_id=None), "dhcp: offer without a server identifier"),
        (
            lambda d: _reply(d, OFFER, yiaddr=parse_address("127.0.0.1")),
            "dhcp: offer of an address no host may have",
        ),
        (lambda d: _reply(d, ACK), "dhcp: ack or nak with no request outstanding"),
        (lambda d: _reply(d, DISCOVER), "dhcp: not a message a server sends a client"),
    ],
)
def test_what_is_not_an_acceptable_offer_is_dropped_and_counted(answer, reason) -> None:
    client, discover = _selecting()
    client.receive(answer(discover), 1.0)
    assert client.state is DhcpState.SELECTING
    assert client.datagrams() == []
    assert client.statistics().dropped == {reason: 1}


@pytest.mark.parametrize(
    ("ack", "reason"),
    [
        ({"server_id": OTHER_SERVER}, "dhcp: answer from a server not chosen"),
        ({"lease_time": None}, "dhcp: ack without a lease time"),
        ({"lease_time": 0}, "dhcp: ack of a lease of 0 seconds"),
        ({"yiaddr": 0}, "dhcp: ack of an address no host may have"),
        ({"subnet_mask": 0xFF00FF00}, "dhcp: ack with a subnet mask that is not one"),
        ({"yiaddr": parse_address("10.99.0.255")}, "dhcp: ack of a network or broadcast address"),
    ],
)
def test_an_ack_that_grants_nothing_usable_is_dropped_and_counted(ack, reason) -> None:
    client = _client()
    _, discover = _one(client)
    client.receive(_reply(discover, OFFER), 0.0)
    _, request = _one(client)
    client.receive(_reply(request, ACK, **ack), 0.1)
    assert client.state is DhcpState.REQUESTING
    assert client.events() == []
    assert client.statistics().dropped == {reason: 1}


@pytest.mark.parametrize(
    ("ack", "expected"),
    [
        # No mask: the address's classful one.
        ({"subnet_mask": None}, {"prefix_length": 8}),
        # Routers outside the subnet, the leased address itself, the subnet's
        # network and broadcast addresses are not gateways.
        ({"routers": (parse_address("192.168.1.1"), OFFERED)}, {"gateway": None}),
        ({"routers": (parse_address("192.168.1.1"), OTHER_SERVER)}, {"gateway": OTHER_SERVER}),
        (
            {"routers": (parse_address("10.99.0.0"), parse_address("10.99.0.255"))},
            {"gateway": None},
        ),
        # T1 and T2 as given; when they contradict each other, the defaults.
        (
            {"renewal_time": 100, "rebinding_time": 200},
            {"renewal_time": 100.0, "rebinding_time": 200.0},
        ),
        (
            {"renewal_time": 3000, "rebinding_time": 5000},
            {"renewal_time": 3000.0, "rebinding_time": 3150.0},
        ),
        (
            {"renewal_time": 3200, "rebinding_time": 3000},
            {"renewal_time": 1800.0, "rebinding_time": 3000.0},
        ),
        # An infinite lease is never renewed.
        (
            {"lease_time": 0xFFFFFFFF},
            {"lease_time": math.inf, "renewal_time": math.inf, "rebinding_time": math.inf},
        ),
    ],
)
def test_a_lease_is_read_from_the_ack_as_rfc_2131_says(ack, expected) -> None:
    client = _client()
    lease = _bind(client, **ack)
    assert {name: getattr(lease, name) for name in expected} == expected
    assert client.next_deadline() == lease.renew_at


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"client_id": b"\x01"}, "2 to 255 bytes"),
        ({"host_name": "no spaces"}, "host name label"),
        ({"requested_address": parse_address("224.0.0.1")}, "unicast IPv4 address"),
        ({"initial_retransmit": 0}, "at least 0.001"),
        ({"jitter": 4.0}, "less than initial_retransmit"),
        ({"max_retransmit": 2.0}, "at least initial_retransmit"),
        ({"request_retries": -1}, "from 0 to 100"),
    ],
)
def test_a_bad_config_says_what_is_wrong(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        DhcpConfig(**settings)


def test_a_client_needs_a_unicast_mac() -> None:
    with pytest.raises(ValueError, match="unicast 6-byte MAC"):
        DhcpClient(b"\x01" * 6, 0.0)


def test_discovers_go_on_every_64_seconds_for_as_long_as_nobody_answers() -> None:
    client = _client()
    for _ in range(2000):
        client.on_timer(client.next_deadline())
    now = client.next_deadline()
    client.on_timer(now)
    assert client.next_deadline() == now + 64.0
    assert client.statistics().discovers_sent == 2002
