"""The DHCP client (RFC 2131) as a sans-io state machine.

Like a TCP connection (``tcp/connection.py``), the client does no I/O and
reads no clock: its owner feeds it the datagrams that came to UDP port 68
and the time, and takes from it the datagrams to send to port 67, the
events (a lease obtained or lost) and the next deadline::

    client = DhcpClient(mac, now, config=DhcpConfig(), rng=random.Random())
    client.receive(payload, now)        # a datagram from a server (port 67 -> 68)
    client.on_timer(now)                # when now >= client.next_deadline()
    client.datagrams() -> list[Outgoing]  # (destination, payload) to port 67
    client.events() -> list[LeaseObtained | LeaseLost]
    client.state, client.lease, client.statistics()

The owner must apply a :class:`LeaseObtained` (give the interface the
lease's address, prefix and gateway) and a :class:`LeaseLost` (take the
address away) *before* it sends the datagrams that follow them: a DISCOVER
after a lost lease leaves from 0.0.0.0, a renewal from the leased address.
Events come before datagrams in that sense: handle ``events()`` first.

States
------
RFC 2131's figure 5, with the names it uses::

    INIT ------DISCOVER-----> SELECTING --OFFER/REQUEST--> REQUESTING --ACK--> BOUND
     ^  (REBOOTING: INIT-REBOOT's REQUEST for a remembered address) --ACK--> BOUND
     |                                                                         | T1
     +--NAK, retries spent, lease expired-- REBINDING <--T2-- RENEWING <-------+
                                                |               |   ACK: BOUND again
                                                +------ACK------+

* **INIT** sends a DHCPDISCOVER (broadcast, from 0.0.0.0) and is
  **SELECTING**: the first acceptable DHCPOFFER wins (RFC 2131 lets a
  client wait for more; Linux's dhclient and systemd-networkd take the first
  too). Its DHCPREQUEST names the offered address (option 50) and the chosen
  server (option 54), broadcast so that the other servers see their offers
  declined; the client is **REQUESTING**. A DHCPACK makes it **BOUND**; a
  DHCPNAK sends it back to INIT.
* With ``requested_address`` the client starts in INIT-REBOOT instead: a
  broadcast DHCPREQUEST for that address with no server identifier
  (**REBOOTING**); an ACK binds it, a NAK or no answer sends it to INIT.
* **BOUND** until T1 (the renewal time, option 58; half the lease by
  default), then **RENEWING**: a DHCPREQUEST unicast to the server that
  granted the lease, from the leased address (``ciaddr``), without options
  50 and 54. No answer by T2 (option 59; 7/8 of the lease by default) and
  the client is **REBINDING**: the same request broadcast to any server. An
  ACK in either renews the lease (BOUND again); a NAK, or the lease's end
  with no ACK, loses it (:class:`LeaseLost`) and the client starts over in
  INIT.

A lease counts from the moment the request that obtained it was first sent,
not from the ACK (RFC 2131 4.4.1): the client can only underestimate it.

Retransmission
--------------
RFC 2131 4.1: DISCOVERs and the REQUESTs of REQUESTING and REBOOTING are
sent again after 4 s, then 8, 16, 32 and 64 s (``initial_retransmit``
doubled up to ``max_retransmit``), each moved by a uniform random -1..+1 s
(``jitter``) so that clients that started together do not stay in step.
DISCOVERs go on forever (the caller bounds the wait it is willing to do);
a REQUEST is retransmitted ``request_retries`` times, then the client goes
back to INIT. In RENEWING and REBINDING (RFC 2131 4.4.5) the request is
sent again after half the time left until T2, or until the lease's end,
but no sooner than ``renew_retransmit_minimum`` (60 s) -- and no later
than T2 or the end, where the state changes anyway.

Starting over after a refusal (a NAK, or a REQUEST with no answer) is
immediate the first time; when it keeps happening without a lease in
between, each start is delayed by the same backoff (4, 8, ... 64 s), so a
server that NAKs every request is not answered with a flood of DISCOVERs.

Trust
-----
Every datagram is parsed (``message.py``); a malformed one, a request
(``op`` 1: another client's broadcast), one with another ``xid`` or
another client's ``chaddr``, a type the state does not expect, an offer or
ACK with an address no host may have, without a server identifier (an
offer) or a lease time (an ACK), from a server other than the one chosen
(REQUESTING), is dropped and counted under a reason in
``statistics().dropped``: nothing a server sends raises.

A lease's subnet mask must be contiguous; a lease without one gets its
address's classful mask (RFC 1122 3.3.1.1's reading of an old default, as
dhclient does). Its gateway is the first router (option 3) that is another
host of the subnet; others are ignored, since the interface routes through
one gateway on the link.

Not implemented: probing the offered address with ARP before using it and
declining it (RFC 2131 2.2, RFC 5227); DHCPRELEASE when the owner stops;
DHCPINFORM; collecting several offers to choose among them; the options
beyond those in ``message.py`` (static routes, MTU, domain names are not
requested).
"""

from __future__ import annotations

import enum
import math
import random
from typing import Any, final

import attrs

from ..wire.errors import Malformed
from .message import (
    ACK,
    BOOTREPLY,
    BOOTREQUEST,
    DISCOVER,
    INFINITE,
    NAK,
    OFFER,
    REQUEST,
    DhcpMessage,
    dhcp_message,
    parse_dhcp,
)

__all__ = [
    "DhcpClient",
    "DhcpConfig",
    "DhcpState",
    "DhcpStatistics",
    "Lease",
    "LeaseLost",
    "LeaseObtained",
    "Outgoing",
]

#: 255.255.255.255: where a client sends what is not for one known server.
LIMITED_BROADCAST = 0xFFFFFFFF

# What a client asks for (option 55): subnet mask, router, name servers,
# domain name, lease time, server identifier, T1, T2.
_PARAMETER_REQUESTS = (1, 3, 6, 15, 51, 54, 58, 59)


class DhcpState(enum.Enum):
    """The client's state, as RFC 2131 names them (see the module docs)."""

    INIT = "INIT"
    SELECTING = "SELECTING"
    REQUESTING = "REQUESTING"
    REBOOTING = "REBOOTING"
    BOUND = "BOUND"
    RENEWING = "RENEWING"
    REBINDING = "REBINDING"


def _seconds(least: float) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not least <= value < math.inf
        ):
            raise ValueError(
                f"DhcpConfig.{attribute.name} must be a finite number of seconds of at least "
                f"{least}, not {value!r}"
            )

    return check


def _optional_address(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or not _usable(value)
    ):
        raise ValueError(
            f"DhcpConfig.{attribute.name} must be a unicast IPv4 address as an int "
            f"(wire.ipv4.parse_address('10.0.0.57') makes one), not {value!r}"
        )


def _client_id(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, bytes) or not 2 <= len(value) <= 255):
        raise ValueError(
            "DhcpConfig.client_id must be 2 to 255 bytes (a type byte, then the id: "
            f"b'\\x01' + MAC is what a client sends by default), not {value!r}"
        )


def _host_name(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (
        not isinstance(value, str)
        or not 1 <= len(value) <= 63
        or not value.isascii()
        or not value.replace("-", "").isalnum()
    ):
        raise ValueError(
            "DhcpConfig.host_name must be a host name label: 1 to 63 ASCII letters, digits "
            f"and hyphens, not {value!r}"
        )


@attrs.frozen
class DhcpConfig:
    """The settings of a :class:`DhcpClient`; times in seconds."""

    #: Option 61; ``None``: type 1 (Ethernet) and the MAC, as dhclient sends.
    client_id: bytes | None = attrs.field(default=None, validator=_client_id)
    #: Option 12, the name a server may register for the address.
    host_name: str | None = attrs.field(default=None, validator=_host_name)
    #: An address held before (a lease remembered across runs): the client
    #: asks for it first (INIT-REBOOT) instead of discovering.
    requested_address: int | None = attrs.field(default=None, validator=_optional_address)
    #: The first retransmission's delay, doubled each time up to ``max_retransmit``.
    initial_retransmit: float = attrs.field(default=4.0, validator=_seconds(0.001))
    max_retransmit: float = attrs.field(default=64.0, validator=_seconds(0.001))
    #: Each delay is moved by a uniform random amount in [-jitter, +jitter].
    jitter: float = attrs.field(default=1.0, validator=_seconds(0.0))
    #: REQUESTs sent again in REQUESTING and REBOOTING before starting over.
    request_retries: int = attrs.field(default=4)
    #: The shortest wait before a renewing or rebinding request is sent again.
    renew_retransmit_minimum: float = attrs.field(default=60.0, validator=_seconds(0.001))

    @request_retries.validator
    def _check_retries(self, attribute: attrs.Attribute[int], value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
            raise ValueError(
                f"DhcpConfig.request_retries must be an integer from 0 to 100, not {value!r}"
            )

    def __attrs_post_init__(self) -> None:
        if self.jitter >= self.initial_retransmit:
            raise ValueError(
                f"DhcpConfig.jitter ({self.jitter} s) must be less than initial_retransmit "
                f"({self.initial_retransmit} s), or a retransmission could come at once"
            )
        if self.max_retransmit < self.initial_retransmit:
            raise ValueError(
                f"DhcpConfig.max_retransmit ({self.max_retransmit} s) must be at least "
                f"initial_retransmit ({self.initial_retransmit} s)"
            )


@attrs.frozen
class Lease:
    """An address leased by a DHCP server, and what came with it.

    Addresses are ints (``wire.ipv4.format_address`` prints them); times are
    in the owner's clock, durations in seconds (``math.inf``: an infinite
    lease, never renewed).
    """

    address: int
    prefix_length: int
    #: The first router in the subnet; ``None``: the server gave none.
    gateway: int | None
    #: The server identifier: whom a renewal goes to.
    server: int
    #: When the request that obtained the lease was first sent: the durations
    #: count from here.
    acquired: float
    lease_time: float
    #: T1 and T2, from ``acquired``.
    renewal_time: float
    rebinding_time: float
    dns_servers: tuple[int, ...] = ()

    @property
    def renew_at(self) -> float:
        """When the client starts renewing (T1)."""
        return self.acquired + self.renewal_time

    @property
    def rebind_at(self) -> float:
        """When the client starts rebinding (T2)."""
        return self.acquired + self.rebinding_time

    @property
    def expires_at(self) -> float:
        """When the address must no longer be used."""
        return self.acquired + self.lease_time


@attrs.frozen
class LeaseObtained:
    """A lease was granted or renewed (its address may differ from the last)."""

    lease: Lease


@attrs.frozen
class LeaseLost:
    """The lease ended (``reason`` says how): stop using its address."""

    reason: str


@attrs.frozen
class Outgoing:
    """A datagram to send to UDP port 67 of ``destination``
    (:data:`LIMITED_BROADCAST` or the lease's server), from port 68."""

    destination: int
    payload: bytes


@attrs.frozen
class DhcpStatistics:
    """What :meth:`DhcpClient.statistics` reports."""

    state: str
    discovers_sent: int
    requests_sent: int
    offers_received: int
    acks_received: int
    naks_received: int
    #: Leases renewed in RENEWING and in REBINDING.
    renewals: int
    rebinds: int
    leases_lost: int
    #: Datagrams ignored, by reason (malformed ones under the parser's).
    dropped: dict[str, int]


def _usable(address: int) -> bool:
    """Whether a host may have ``address``: not 0/8, loopback, multicast,
    reserved or the limited broadcast."""
    top = address >> 24
    return 0 <= address <= 0xFFFFFFFF and top != 0 and top != 127 and top < 224


def _classful_prefix(address: int) -> int:
    top = address >> 24
    return 8 if top < 128 else 16 if top < 192 else 24


def _prefix_length(mask: int) -> int | None:
    """The prefix length of a contiguous mask, else None."""
    inverted = ~mask & 0xFFFFFFFF
    if inverted & (inverted + 1):
        return None
    return 32 - inverted.bit_length()


@final
class DhcpClient:
    """A DHCP client for one Ethernet interface; see the module docs.

    ``DhcpClient(mac, now, config=..., rng=...)`` starts it at ``now``: the
    first DISCOVER (or INIT-REBOOT's REQUEST) is ready in :meth:`datagrams`.
    ``rng`` draws transaction ids and jitter (seed it for a reproducible run).
    """

    __slots__ = (
        "_began",
        "_client_id",
        "_datagrams",
        "_deadline",
        "_dropped",
        "_events",
        "_failures",
        "_lease",
        "_mac",
        "_offer",
        "_request_sent",
        "_rng",
        "_sent",
        "_server",
        "_state",
        "_xid",
        "acks_received",
        "config",
        "discovers_sent",
        "leases_lost",
        "naks_received",
        "offers_received",
        "rebinds",
        "renewals",
        "requests_sent",
    )

    def __init__(
        self,
        mac: bytes,
        now: float,
        *,
        config: DhcpConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(mac, bytes) or len(mac) != 6 or mac[0] & 1:
            raise ValueError(f"a DHCP client needs the interface's unicast 6-byte MAC, not {mac!r}")
        self.config = config = config if config is not None else DhcpConfig()
        self._mac = mac
        self._client_id = config.client_id if config.client_id is not None else b"\x01" + mac
        self._rng = rng if rng is not None else random.Random()
        self._datagrams: list[Outgoing] = []
        self._events: list[LeaseObtained | LeaseLost] = []
        self._dropped: dict[str, int] = {}
        self._lease: Lease | None = None
        self._state = DhcpState.INIT
        self._deadline = math.inf
        self._xid = 0
        self._began = now  # when the current exchange began (the secs field)
        self._request_sent = now  # when the current REQUEST was first sent
        self._sent = 0  # messages sent in the current exchange
        self._offer = 0  # the address offered (SELECTING -> REQUESTING)
        self._server = 0  # the server chosen (REQUESTING)
        self._failures = 0  # starts over without a lease in between
        self.discovers_sent = self.requests_sent = 0
        self.offers_received = self.acks_received = self.naks_received = 0
        self.renewals = self.rebinds = self.leases_lost = 0
        if config.requested_address is not None:
            self._reboot(config.requested_address, now)
        else:
            self._discover(now)

    def __repr__(self) -> str:
        return f"<DhcpClient {self._mac.hex(':')} {self._state.value}>"

    @property
    def state(self) -> DhcpState:
        """Where the client is (see the module docs)."""
        return self._state

    @property
    def lease(self) -> Lease | None:
        """The lease held now (BOUND, RENEWING, REBINDING), else ``None``."""
        return self._lease

    # -- what the owner takes ---------------------------------------------------

    def datagrams(self) -> list[Outgoing]:
        """The datagrams to send since the last call, oldest first."""
        datagrams = self._datagrams
        self._datagrams = []
        return datagrams

    def events(self) -> list[LeaseObtained | LeaseLost]:
        """The events since the last call, oldest first; apply them before
        sending :meth:`datagrams` (see the module docs)."""
        events = self._events
        self._events = []
        return events

    def next_deadline(self) -> float:
        """When :meth:`on_timer` has work (``math.inf``: never, as for an
        infinite lease)."""
        return self._deadline

    # -- input ---------------------------------------------------------------

    def receive(self, payload: memoryview | bytes, now: float) -> None:
        """A datagram that came to port 68. Never raises for its content:
        what is not an answer to the client is dropped and counted."""
        try:
            message = parse_dhcp(payload)
        except Malformed as error:
            self._drop(error.reason)
            return
        if message.op != BOOTREPLY:
            self._drop("dhcp: a request (another client's)")
            return
        if message.xid != self._xid or message.chaddr != self._mac:
            self._drop("dhcp: not an answer to our transaction")
            return
        kind = message.message_type
        state = self._state
        if kind == OFFER:
            if state is DhcpState.SELECTING:
                self._on_offer(message, now)
            else:
                self._drop("dhcp: offer while not selecting")
        elif kind in (ACK, NAK):
            if state in (DhcpState.INIT, DhcpState.SELECTING, DhcpState.BOUND):
                self._drop("dhcp: ack or nak with no request outstanding")
            elif (
                state is DhcpState.REQUESTING
                and message.server_id is not None
                and message.server_id != self._server
            ):
                self._drop("dhcp: answer from a server not chosen")
            elif kind == ACK:
                self._on_ack(message, now)
            else:
                self._on_nak(message, now)
        else:
            self._drop("dhcp: not a message a server sends a client")

    def on_timer(self, now: float) -> None:
        """Do what is due by ``now``: retransmit, or move on (T1, T2, the
        lease's end, a delayed start). Earlier than the deadline it does nothing."""
        if now < self._deadline:
            return
        state = self._state
        if state is DhcpState.INIT:
            self._discover(now)
        elif state is DhcpState.SELECTING:
            self._send_discover(now)
            self._retransmit_after(now)
        elif state is DhcpState.REQUESTING or state is DhcpState.REBOOTING:
            if self._sent - 1 >= self.config.request_retries:  # retransmissions so far
                self._start_over(now)
            else:
                self._send_request(now)
                self._retransmit_after(now)
        else:  # BOUND, RENEWING, REBINDING
            lease = self._lease
            assert lease is not None
            if now >= lease.expires_at:
                self._lose("the lease expired", now)
            elif now >= lease.rebind_at and state is not DhcpState.REBINDING:
                self._state = DhcpState.REBINDING
                self._new_exchange(now)
                self._renew(now)
            elif state is DhcpState.BOUND:
                self._state = DhcpState.RENEWING
                self._new_exchange(now)
                self._renew(now)
            else:
                self._renew(now)  # a retransmission

    # -- transitions -----------------------------------------------------------

    def _discover(self, now: float) -> None:
        self._state = DhcpState.SELECTING
        self._new_exchange(now)
        self._send_discover(now)
        self._retransmit_after(now)

    def _reboot(self, address: int, now: float) -> None:
        self._state = DhcpState.REBOOTING
        self._new_exchange(now)
        self._offer = address
        self._server = 0
        self._send_request(now)
        self._retransmit_after(now)

    def _on_offer(self, message: DhcpMessage, now: float) -> None:
        if not _usable(message.yiaddr):
            self._drop("dhcp: offer of an address no host may have")
            return
        if message.server_id is None:
            self._drop("dhcp: offer without a server identifier")
            return
        self.offers_received += 1
        self._state = DhcpState.REQUESTING
        self._offer = message.yiaddr
        self._server = message.server_id
        self._sent = 0
        self._request_sent = now
        self._send_request(now)
        self._retransmit_after(now)

    def _on_ack(self, message: DhcpMessage, now: float) -> None:
        lease = self._lease_from(message)
        if lease is None:
            return
        self.acks_received += 1
        state = self._state
        if state is DhcpState.RENEWING:
            self.renewals += 1
        elif state is DhcpState.REBINDING:
            self.rebinds += 1
        self._state = DhcpState.BOUND
        self._lease = lease
        self._failures = 0
        self._deadline = lease.renew_at
        self._events.append(LeaseObtained(lease))

    def _on_nak(self, message: DhcpMessage, now: float) -> None:
        self.naks_received += 1
        if self._lease is not None:
            self._lose("the server refused to renew the lease (DHCPNAK)", now)
        else:
            self._start_over(now)

    def _lose(self, reason: str, now: float) -> None:
        self._lease = None
        self.leases_lost += 1
        self._events.append(LeaseLost(reason))
        self._discover(now)

    def _start_over(self, now: float) -> None:
        """Back to INIT after a refusal: at once the first time, after a
        backoff when it keeps happening (see the module docs)."""
        self._failures += 1
        self._state = DhcpState.INIT
        if self._failures == 1:
            self._discover(now)
        else:
            self._deadline = now + self._backoff(self._failures - 2)

    def _renew(self, now: float) -> None:
        lease = self._lease
        assert lease is not None
        self._send_request(now)
        end = lease.rebind_at if self._state is DhcpState.RENEWING else lease.expires_at
        wait = max(self.config.renew_retransmit_minimum, (end - now) / 2)
        self._deadline = min(now + wait, end)

    # -- sending -------------------------------------------------------------------

    def _new_exchange(self, now: float) -> None:
        self._xid = self._rng.getrandbits(32)
        self._began = self._request_sent = now
        self._sent = 0

    def _backoff(self, attempt: int) -> float:
        config = self.config
        # (The exponent is bounded: DISCOVERs go on forever, 2.0**1024 overflows.)
        delay = min(config.initial_retransmit * 2.0 ** min(attempt, 64), config.max_retransmit)
        return delay + self._rng.uniform(-config.jitter, config.jitter)

    def _retransmit_after(self, now: float) -> None:
        self._deadline = now + self._backoff(self._sent - 1)

    def _message(self, kind: int, now: float) -> DhcpMessage:
        return DhcpMessage(
            op=BOOTREQUEST,
            message_type=kind,
            xid=self._xid,
            chaddr=self._mac,
            secs=max(0, int(now - self._began)),
            client_id=self._client_id,
            host_name=None if self.config.host_name is None else self.config.host_name.encode(),
            parameter_requests=_PARAMETER_REQUESTS,
        )

    def _send_discover(self, now: float) -> None:
        self.discovers_sent += 1
        self._sent += 1
        message = self._message(DISCOVER, now)
        self._datagrams.append(Outgoing(LIMITED_BROADCAST, dhcp_message(message)))

    def _send_request(self, now: float) -> None:
        self.requests_sent += 1
        self._sent += 1
        message = self._message(REQUEST, now)
        state = self._state
        destination = LIMITED_BROADCAST
        if state is DhcpState.REQUESTING:
            message.requested_address = self._offer
            message.server_id = self._server
        elif state is DhcpState.REBOOTING:
            message.requested_address = self._offer
        else:
            lease = self._lease
            assert lease is not None
            message.ciaddr = lease.address
            if state is DhcpState.RENEWING:
                destination = lease.server
        self._datagrams.append(Outgoing(destination, dhcp_message(message)))

    # -- checking a lease --------------------------------------------------------------

    def _lease_from(self, message: DhcpMessage) -> Lease | None:
        """The lease an ACK grants, or None (dropped, counted) if it grants
        none a host can use."""
        address = message.yiaddr
        if not _usable(address):
            self._drop("dhcp: ack of an address no host may have")
            return None
        if message.lease_time is None:
            self._drop("dhcp: ack without a lease time")
            return None
        if message.lease_time == 0:
            self._drop("dhcp: ack of a lease of 0 seconds")
            return None
        if message.subnet_mask is None:
            prefix: int | None = _classful_prefix(address)
        else:
            prefix = _prefix_length(message.subnet_mask)
            if prefix is None or prefix == 0:
                self._drop("dhcp: ack with a subnet mask that is not one")
                return None
        assert prefix is not None
        mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
        network = address & mask
        # A /31 or /32 has no network and broadcast addresses (RFC 3021).
        reserved = (network, network | (~mask & 0xFFFFFFFF)) if prefix <= 30 else ()
        if address in reserved:
            self._drop("dhcp: ack of a network or broadcast address")
            return None
        gateway = None
        for router in message.routers:
            if router & mask == network and router != address and router not in reserved:
                gateway = router
                break
        server = message.server_id
        if server is None:
            server = self._server if self._state is DhcpState.REQUESTING else 0
            if not server and self._lease is not None:
                server = self._lease.server
        if not server:
            self._drop("dhcp: ack without a server identifier")
            return None
        lease_time = math.inf if message.lease_time == INFINITE else float(message.lease_time)
        rebinding = _time(message.rebinding_time, lease_time, 0.875 * lease_time)
        renewal = _time(message.renewal_time, rebinding, min(0.5 * lease_time, rebinding))
        return Lease(
            address=address,
            prefix_length=prefix,
            gateway=gateway,
            server=server,
            acquired=self._request_sent,
            lease_time=lease_time,
            renewal_time=renewal,
            rebinding_time=rebinding,
            dns_servers=message.dns_servers,
        )

    def _drop(self, reason: str) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + 1

    def statistics(self) -> DhcpStatistics:
        """A snapshot of the counters."""
        return DhcpStatistics(
            state=self._state.value,
            discovers_sent=self.discovers_sent,
            requests_sent=self.requests_sent,
            offers_received=self.offers_received,
            acks_received=self.acks_received,
            naks_received=self.naks_received,
            renewals=self.renewals,
            rebinds=self.rebinds,
            leases_lost=self.leases_lost,
            dropped=dict(self._dropped),
        )


def _time(given: int | None, bound: float, default: float) -> float:
    """T1 or T2: the server's value if it comes before ``bound``, else the default."""
    if given is None or given == INFINITE or given >= bound:
        return default
    return float(given)
