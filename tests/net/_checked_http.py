"""Driving a ``shardio_net.http.ServerConnection`` with every step checked
against its transition table.

The parser's hot paths make their state transitions directly, without
looking at ``_CLIENT_TRANSITIONS`` and ``_SERVER_TRANSITIONS`` (see the
module docs of ``shardio_net._http``). :func:`next_event` and :func:`send`
call the connection's own and then check that the step it took is the
table's: the states after it are what ``_next_states`` gives for the states
before it and the event (an event returned, the ``RemoteProtocolError``
raised, the event sent), a pause or a refused send changes nothing, and
keep-alive only ever goes from true to false. The tests that drive
connections through many paths -- the property tests, the differential test
against h11 -- use these instead of the methods.
"""

from __future__ import annotations

from shardio_net import _http
from shardio_net.http import (
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
    ServerConnection,
)

States = tuple[_http._State, _http._State]


def states(conn: ServerConnection) -> States:
    """The (client, server) states of ``conn``."""
    return conn._request_side, conn._response_side


def next_event(conn: ServerConnection) -> Event:
    """``conn.next_event()``, its step checked against the table."""
    before, keep_alive = states(conn), conn.keep_alive
    try:
        event = conn.next_event()
    except RemoteProtocolError:
        check_step(conn, before, keep_alive, RemoteProtocolError, by_client=True)
        raise
    if event is NEED_DATA or event is PAUSED:
        assert states(conn) == before, f"{event} moved {before} to {states(conn)}"
    else:
        check_step(conn, before, keep_alive, type(event), by_client=True)
    return event


def send(
    conn: ServerConnection, event: InformationalResponse | Response | Data | EndOfMessage
) -> bytes:
    """``conn.send(event)``, its step checked against the table."""
    before, keep_alive = states(conn), conn.keep_alive
    try:
        data = conn.send(event)
    except LocalProtocolError:
        assert (states(conn), conn.keep_alive) == (before, keep_alive), "a refused send changed"
        raise
    check_step(conn, before, keep_alive, type(event), by_client=False)
    return data


def check_step(
    conn: ServerConnection, before: States, keep_alive: bool, event_type: type, *, by_client: bool
) -> None:
    assert keep_alive or not conn.keep_alive, "keep-alive came back"
    expected = _http._next_states(before, conn.keep_alive, event_type, by_client)
    side = "the client's" if by_client else "the server's"
    assert expected is not None, f"{side} {event_type.__name__} in {before}: not in the table"
    assert states(conn) == expected, (
        f"{side} {event_type.__name__} took {before} to {states(conn)}; the table says {expected}"
    )
