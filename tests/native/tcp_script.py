"""A packetdrill-like script runner for one sans-io TcpConnection.

A script is text, one step per line: a time, then what happens::

    0      connect
    0      > S 0:0(0) win 65535 <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 3>
    +0.1   < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 700 ecr 0,nop,wscale 7>
    +0     > . 1:1(0) ack 1 <nop,nop,TS val 100 ecr 700>
    +0     event Connected
    +0     state ESTABLISHED

Times are seconds of simulated time, absolute (``0.3``) or relative to the
previous line (``+0.1``). Before each line the runner advances the clock to
its time, running the connection's timers at their deadlines in between (so a
retransmission appears at the exact time the RTO says) -- as a stack would.

``<`` injects a segment from the peer, ``>`` expects the next segment the
connection emitted, both in packetdrill's notation: flags (``S`` SYN, ``F``
FIN, ``R`` RST, ``P`` PSH, ``.`` ACK), ``start:end(length)`` sequence numbers
relative to the sender's initial sequence number, ``ack N`` relative to the
receiver's, ``win N`` the raw window field, and ``<options>``: ``mss N``,
``wscale N``, ``sackOK``, ``TS val N ecr N`` (``*`` matches anything),
``sack a:b c:d`` (relative like ``ack``), ``nop`` (ignored: the layout is the
wire's business). On an expectation, ``<...>`` accepts any options, no
options at all means none, and an absent ``win`` is not checked. Injected
data carries bytes of a known pattern; data the connection emits is checked
against the bytes the script gave ``send``, and must be *views of those very
buffers* (zero copy); delivered data likewise must be views of the injected
frames, and must be the peer's bytes in order.

Other steps: ``connect``; ``send 1000`` (one buffer; ``send 1000,500`` two;
``send 3000 -> 2000`` asserts only 2000 were taken); ``consume N``;
``shutdown``; ``close``; ``abort`` -- several of these joined by ``;`` run
before the connection is drained, as when the application makes several
calls between two passes of the stack; ``state NAME``; ``event NAME [args]``
(``Connected``, ``DataReceived N``, ``EndOfStream``, ``BuffersReleased COUNT
NBYTES``, ``Reset refused|reset``, ``TimedOut``, ``Closed``); ``check EXPR``
(a Python expression over ``c``, the connection, and ``s``, its statistics);
``timer T`` (asserts the next deadline is at time T, or ``none``).

Strictness, as in packetdrill: a segment the connection emitted and the
script did not expect fails the script at the next non-``>`` step (so a line
``1.0 < ...`` also asserts that nothing was sent before 1.0 that the script
did not list). Events are matched in order by ``event`` steps; events the
script does not mention fail it too, except DataReceived and BuffersReleased
(checked by the runner itself), which may go unmentioned.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from shardio_net.native.tcp import (
    BuffersReleased,
    Closed,
    Connected,
    DataReceived,
    EndOfStream,
    Reset,
    TcpConfig,
    TcpConnection,
    TimedOut,
)
from shardio_net.native.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, TcpSegment

__all__ = [
    "CONNECT",
    "CONNECT_NO_SACK",
    "CONNECT_PLAIN",
    "ISS",
    "LOCAL",
    "PEER_ISN",
    "REMOTE",
    "Script",
    "pattern",
    "segment",
]

LOCAL = (0x0A000001, 40000)
REMOTE = (0x0A000002, 80)
#: Our ISS and the peer's, in the scripts' default world.
ISS = 1_000_000
PEER_ISN = 5_000_000
MASK = 0xFFFF_FFFF

_FLAG_CHARS = {"S": SYN, "F": FIN, "R": RST, "P": PSH, ".": ACK, "U": URG, "E": ECE, "W": CWR}
_SEGMENT = re.compile(
    r"^(?P<flags>[SFRPUEW.]+)\s+(?P<start>-?\d+):(?P<end>-?\d+)\((?P<len>\d+)\)"
    r"(?:\s+ack\s+(?P<ack>-?\d+))?(?:\s+win\s+(?P<win>\d+))?(?:\s+<(?P<opts>[^>]*)>)?\s*$"
)

_PERIOD = 251
_PATTERN = bytes(i % _PERIOD for i in range(1 << 16)) * 4


def pattern(offset: int, length: int) -> bytes:
    """``length`` bytes of the peer's (and the application's) stream from ``offset``."""
    out = bytearray()
    while length > 0:
        start = offset % _PERIOD
        n = min(length, len(_PATTERN) - start)
        out += _PATTERN[start : start + n]
        offset += n
        length -= n
    return bytes(out)


def segment(
    flags: int,
    seq: int,
    ack: int = 0,
    *,
    window: int = 65535,
    payload: bytes = b"",
    **options: Any,
) -> TcpSegment:
    """A segment from REMOTE to LOCAL with absolute (wire) numbers."""
    return TcpSegment(
        REMOTE[1],
        LOCAL[1],
        seq & MASK,
        ack & MASK,
        flags,
        window,
        payload=memoryview(payload),
        **options,
    )


def _flags_text(flags: int) -> str:
    text = "".join(ch for ch, bit in _FLAG_CHARS.items() if flags & bit and ch != ".")
    return text + "." if flags & ACK else text


class ScriptError(AssertionError):
    pass


class Script:
    """Runs scripts against one connection; see the module docs."""

    def __init__(
        self,
        config: TcpConfig | None = None,
        *,
        iss: int = ISS,
        peer_isn: int = PEER_ISN,
        ts_offset: int = 0,
        auto_consume: bool = True,
    ) -> None:
        self.config = config if config is not None else TcpConfig()
        self.iss = iss
        self.peer_isn = peer_isn
        self.ts_offset = ts_offset
        self.auto_consume = auto_consume
        self.conn: TcpConnection | None = None
        self.now = 0.0
        #: Emitted and not yet matched: (time, segment, payload parts).
        self.pending: list[tuple[float, TcpSegment, tuple[memoryview, ...]]] = []
        #: Every segment emitted: (time, segment, payload bytes).
        self.sent: list[tuple[float, TcpSegment, bytes]] = []
        self.pending_events: list[Any] = []
        self.all_events: list[Any] = []
        #: The application's stream so far, and the buffers it was given in.
        self.app_stream = bytearray()
        self.app_buffers: list[bytearray] = []
        #: Received bytes delivered so far, and the frames injected.
        self.delivered = 0
        self.frames: list[bytes] = []
        self._line = ""
        self._lineno = 0

    # -- running -------------------------------------------------------

    def run(self, text: str) -> Script:
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            self._line = line
            self._lineno = lineno
            when, _, rest = line.partition(" ")
            rest = rest.strip()
            t = self.now + float(when[1:]) if when.startswith("+") else float(when)
            if t < self.now - 1e-9:
                self._fail(f"time goes backwards ({t} < {self.now})")
            self._advance(t)
            self._step(rest)
        self._line = "(end of script)"
        self._no_pending()
        return self

    def finish(self, until: float) -> Script:
        """Run the timers up to ``until`` and assert nothing unexpected was
        sent and no unmentioned event happened meanwhile (``run`` checks
        the same at the end of its script)."""
        self._line = f"(finish at {until})"
        self._advance(until)
        self._no_pending()
        return self

    def _fail(self, message: str) -> None:
        raise ScriptError(f"line {self._lineno}: {self._line!r}: {message}")

    @property
    def c(self) -> TcpConnection:
        if self.conn is None:
            self._fail("no connection yet (connect, or inject a SYN first)")
        assert self.conn is not None
        return self.conn

    def _advance(self, t: float) -> None:
        conn = self.conn
        if conn is not None:
            while True:
                deadline = conn.next_deadline()
                if deadline > t + 1e-9:
                    break
                self.now = max(self.now, deadline)
                conn.on_timer(self.now)
                self._drain()
        self.now = t

    def _drain(self) -> None:
        conn = self.c
        for seg, parts in conn.segments_to_send(self.now):
            self.pending.append((self.now, seg, parts))
            self.sent.append((self.now, seg, b"".join(bytes(p) for p in parts)))
            for part in parts:
                if not any(part.obj is buf for buf in self.app_buffers):
                    self._fail("an emitted payload part is not a view of a buffer given to send")
        for event in conn.events():
            self.all_events.append(event)
            self.pending_events.append(event)
            if isinstance(event, DataReceived):
                for view in event.data:
                    if not any(view.obj is frame for frame in self.frames):
                        self._fail("delivered data is not a view of an injected frame")
                    expected = pattern(self.delivered, len(view))
                    if bytes(view) != expected:
                        self._fail(f"delivered bytes at offset {self.delivered} are wrong")
                    self.delivered += len(view)
                if self.auto_consume:
                    conn.consumed(event.nbytes)

    def _no_pending(self) -> None:
        if self.pending:
            t, seg, parts = self.pending[0]
            self._fail(f"unexpected segment at {t:.6f}: {self.render(seg, parts)}")
        for event in self.pending_events:
            if not isinstance(event, DataReceived | BuffersReleased):
                self._fail(f"unexpected event {event!r}")
        self.pending_events.clear()

    def _step(self, rest: str) -> None:
        verb, _, args = rest.partition(" ")
        args = args.strip()
        if verb == ">":
            self._expect(args)
            return
        if verb == "event":
            self._expect_event(args)
            return
        if verb in ("state", "check", "timer"):
            self._assertion(verb, args)
            return
        self._no_pending()
        if verb == "<":
            self._inject(args)
        else:
            for call in rest.split(";"):
                self._call(call.strip())
        self._drain()

    def _call(self, call: str) -> None:
        verb, _, args = call.partition(" ")
        args = args.strip()
        if verb == "connect":
            self.conn = TcpConnection.connect(
                LOCAL,
                REMOTE,
                self.config,
                self.now,
                self.iss,
                ts_offset=self.ts_offset,
            )
        elif verb == "send":
            sizes_text, _, taken_text = args.partition("->")
            sizes = [int(x) for x in sizes_text.split(",")]
            buffers = []
            for size in sizes:
                buf = bytearray(pattern(len(self.app_stream) + sum(len(b) for b in buffers), size))
                buffers.append(buf)
            taken = self.c.send(buffers)
            want = int(taken_text) if taken_text.strip() else sum(sizes)
            if taken != want:
                self._fail(f"send took {taken} bytes, expected {want}")
            self.app_buffers.extend(buffers)
            kept = taken
            for buf in buffers:
                self.app_stream += buf[:kept]
                kept -= min(kept, len(buf))
        elif verb == "consume":
            self.c.consumed(int(args))
        elif verb == "shutdown":
            self.c.shutdown_write(self.now)
        elif verb == "close":
            self.c.close(self.now)
        elif verb == "abort":
            self.c.abort(self.now)
        else:
            self._fail(f"unknown step {verb!r}")

    # -- segments ------------------------------------------------------

    def _parse(self, text: str, inbound: bool) -> dict[str, Any]:
        m = _SEGMENT.match(text)
        if m is None:
            self._fail(f"cannot parse segment {text!r}")
        assert m is not None
        flags = 0
        for ch in m["flags"]:
            flags |= _FLAG_CHARS[ch]
        start, end, length = int(m["start"]), int(m["end"]), int(m["len"])
        if end - start != length:
            self._fail(f"{start}:{end} is not {length} bytes")
        spec: dict[str, Any] = {
            "flags": flags,
            "start": start,
            "len": length,
            "ack": None if m["ack"] is None else int(m["ack"]),
            "win": None if m["win"] is None else int(m["win"]),
            "opts": None,
        }
        if m["opts"] is not None:
            spec["opts"] = self._parse_options(m["opts"], inbound)
        return spec

    def _parse_options(self, text: str, inbound: bool) -> dict[str, Any] | str:
        if text.strip() == "...":
            return "any"
        opts: dict[str, Any] = {}
        # SACK blocks are relative to the ISN of whoever's data they cover.
        base = self.iss if inbound else self.peer_isn
        for item in text.split(","):
            words = item.split()
            if not words or words[0] in ("nop", "eol"):
                continue
            kind = words[0]
            if kind == "mss":
                opts["mss"] = int(words[1])
            elif kind == "wscale":
                opts["window_scale"] = int(words[1])
            elif kind == "sackOK":
                opts["sack_permitted"] = True
            elif kind == "TS":
                # TS val N ecr N
                opts["timestamp"] = (words[2], words[4])
            elif kind == "sack":
                blocks = []
                for pair in words[1:]:
                    left, right = pair.split(":")
                    blocks.append(((base + int(left)) & MASK, (base + int(right)) & MASK))
                opts["sack_blocks"] = tuple(blocks)
            else:
                self._fail(f"unknown option {kind!r}")
        return opts

    def _inject(self, text: str) -> None:
        spec = self._parse(text, inbound=True)
        flags = spec["flags"]
        frame = pattern(spec["start"] - 1, spec["len"]) if spec["len"] else b""
        frame = bytes(frame)
        self.frames.append(frame)
        opts = spec["opts"] if isinstance(spec["opts"], dict) else {}
        kwargs: dict[str, Any] = {}
        for key, value in opts.items():
            if key == "timestamp":
                kwargs[key] = (int(value[0]) & MASK, int(value[1]) & MASK)
            else:
                kwargs[key] = value
        seg = TcpSegment(
            REMOTE[1],
            LOCAL[1],
            (self.peer_isn + spec["start"]) & MASK,
            (self.iss + (spec["ack"] or 0)) & MASK,
            flags,
            65535 if spec["win"] is None else spec["win"],
            payload=memoryview(frame),
            **kwargs,
        )
        if self.conn is None:
            if flags & (SYN | ACK) != SYN:
                self._fail("the first injected segment of a passive script must be a SYN")
            self.conn = TcpConnection.from_syn(
                seg, LOCAL, REMOTE, self.config, self.now, self.iss, ts_offset=self.ts_offset
            )
        else:
            self.conn.on_segment(seg, self.now)

    def _expect(self, text: str) -> None:
        spec = self._parse(text, inbound=False)
        if not self.pending:
            self._fail("expected a segment, but none was sent")
        t, seg, parts = self.pending.pop(0)
        got = self.render(seg, parts)
        if abs(t - self.now) > 1e-6:
            self._fail(f"the segment was sent at {t:.6f}, not {self.now:.6f}: {got}")
        if seg.flags != spec["flags"]:
            self._fail(f"flags differ: got {got}")
        rel_seq = (seg.seq - self.iss) & MASK
        if rel_seq != spec["start"] & MASK:
            self._fail(f"sequence number differs: got {got}")
        length = sum(len(p) for p in parts)
        if length != spec["len"]:
            self._fail(f"length differs: got {got}")
        if length:
            data = b"".join(bytes(p) for p in parts)
            offset = spec["start"] - 1
            if data != bytes(self.app_stream[offset : offset + length]):
                self._fail(f"payload bytes differ from what was sent at offset {offset}")
        if spec["flags"] & ACK:
            if spec["ack"] is None:
                self._fail("an expected ACK needs 'ack N'")
            if (seg.ack - self.peer_isn) & MASK != spec["ack"] & MASK:
                self._fail(f"ack differs: got {got}")
        if spec["win"] is not None and seg.window != spec["win"]:
            self._fail(f"window differs: got {got}")
        opts = spec["opts"]
        if opts == "any":
            return
        want = opts or {}
        have = {
            "mss": seg.mss,
            "window_scale": seg.window_scale,
            "sack_permitted": seg.sack_permitted or None,
            "sack_blocks": seg.sack_blocks or None,
            "timestamp": seg.timestamp,
        }
        for key, value in have.items():
            expected = want.get(key)
            if key == "timestamp" and expected is not None and value is not None:
                for w, h in zip(expected, value, strict=True):
                    if w != "*" and int(w) != h:
                        self._fail(f"timestamps differ: got {got}")
                continue
            if expected != value:
                self._fail(f"option {key} differs (want {expected}): got {got}")

    def render(self, seg: TcpSegment, parts: tuple[memoryview, ...] = ()) -> str:
        """A segment we sent, in the scripts' notation."""
        length = sum(len(p) for p in parts) if parts else len(seg.payload)
        start = (seg.seq - self.iss) & MASK
        text = f"{_flags_text(seg.flags)} {start}:{start + length}({length})"
        if seg.flags & ACK:
            text += f" ack {(seg.ack - self.peer_isn) & MASK}"
        text += f" win {seg.window}"
        opts = []
        if seg.mss is not None:
            opts.append(f"mss {seg.mss}")
        if seg.sack_permitted:
            opts.append("sackOK")
        if seg.timestamp is not None:
            opts.append(f"TS val {seg.timestamp[0]} ecr {seg.timestamp[1]}")
        if seg.window_scale is not None:
            opts.append(f"wscale {seg.window_scale}")
        if seg.sack_blocks:
            blocks = " ".join(
                f"{(a - self.peer_isn) & MASK}:{(b - self.peer_isn) & MASK}"
                for a, b in seg.sack_blocks
            )
            opts.append(f"sack {blocks}")
        if opts:
            text += " <" + ",".join(opts) + ">"
        return text

    # -- events and assertions ----------------------------------------

    def _expect_event(self, text: str) -> None:
        words = text.split()
        name = words[0]
        while self.pending_events:
            event = self.pending_events.pop(0)
            if type(event).__name__ != name and isinstance(event, DataReceived | BuffersReleased):
                continue
            break
        else:
            self._fail(f"expected event {name}, but there is none")
        if type(event).__name__ != name:
            self._fail(f"expected event {name}, got {event!r}")
        checks: dict[str, Callable[[Any], bool]] = {
            "Connected": lambda e: isinstance(e, Connected),
            "EndOfStream": lambda e: isinstance(e, EndOfStream),
            "Closed": lambda e: isinstance(e, Closed),
            "TimedOut": lambda e: isinstance(e, TimedOut),
            "DataReceived": lambda e: len(words) < 2 or e.nbytes == int(words[1]),
            "BuffersReleased": lambda e: (
                len(words) < 3 or (e.count, e.nbytes) == (int(words[1]), int(words[2]))
            ),
            "Reset": lambda e: len(words) < 2 or e.refused == (words[1] == "refused"),
        }
        if name not in checks:
            self._fail(f"unknown event {name!r}")
        if not checks[name](event):
            self._fail(f"event differs: got {event!r}")
        if isinstance(event, Reset | TimedOut) and len(words) > 2:
            wanted = " ".join(words[2:]) if isinstance(event, Reset) else " ".join(words[1:])
            if wanted not in event.reason:
                self._fail(f"reason {event.reason!r} does not mention {wanted!r}")

    def _assertion(self, verb: str, args: str) -> None:
        conn = self.c
        if verb == "state":
            if conn.state.name != args:
                self._fail(f"state is {conn.state.name}")
        elif verb == "timer":
            deadline = conn.next_deadline()
            if args == "none":
                if deadline != math.inf:
                    self._fail(f"a timer runs, due at {deadline:.6f}")
            elif abs(deadline - float(args)) > 1e-6:
                self._fail(f"the next deadline is {deadline:.6f}")
        else:
            namespace = {"c": conn, "s": conn.statistics(), "script": self}
            if not eval(args, namespace):  # the scripts are ours: a test assertion
                stats = conn.statistics()
                self._fail(f"check failed; statistics: {stats}")


#: The active open every scripted test with the default config starts from:
#: we SYN at 0, the peer answers at 0.1 (wscale 7, TSval 700), we ACK.
CONNECT = """
0     connect
0     > S 0:0(0) win 65535 <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 3>
+0.1  < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 700 ecr 0,nop,wscale 7>
+0    > . 1:1(0) ack 1 win 32768 <nop,nop,TS val 100 ecr 700>
+0    event Connected
"""

#: The same without timestamps (``TcpConfig(timestamps=False)``): shorter
#: lines for tests about data. RTT 0.1 s measured on the SYN: RTO 0.3 s.
CONNECT_PLAIN = """
0     connect
0     > S 0:0(0) win 65535 <mss 1460,sackOK,nop,wscale 3>
+0.1  < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,nop,wscale 7>
+0    > . 1:1(0) ack 1 win 32768
+0    event Connected
"""

#: The same for a peer without SACK (``TcpConfig(timestamps=False)``, peer
#: offers no SACK-permitted): NewReno recovery.
CONNECT_NO_SACK = """
0     connect
0     > S 0:0(0) win 65535 <mss 1460,sackOK,nop,wscale 3>
+0.1  < S. 0:0(0) ack 1 win 65535 <mss 1460,nop,wscale 7>
+0    > . 1:1(0) ack 1 win 32768
+0    event Connected
"""
