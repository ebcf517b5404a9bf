"""The shared-memory rings and the sleep/doorbell protocol (shardio._core._ring)."""

from __future__ import annotations

import hashlib
import os
import random
import select
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shardio._core._ring_c import lib

from shardio._core._ring import FRAGMENT, Ring, SharedArea


def drain(
    ring: Ring, partial: bytearray | None = None, area: SharedArea | None = None
) -> list[bytes]:
    """Consume every complete payload in the ring, reassembling fragments;
    ring the producer's doorbell (if ``area`` is given) when it waits for space."""
    out: list[bytes] = []
    buffer = partial if partial is not None else bytearray()
    while (item := ring.peek()) is not None:
        view, flags = item
        buffer += view
        length = len(view)
        view.release()
        if ring.pop(length) and area is not None:
            area.ring_doorbell(ring.src)
        if not flags & FRAGMENT:
            out.append(bytes(buffer))
            buffer.clear()
    return out


def test_empty_ring_peeks_none_and_refuses_empty_payloads() -> None:
    area = SharedArea(2, 4096)
    try:
        ring = area.ring(0, 1)
        assert ring.peek() is None
        assert ring.used == 0
        with pytest.raises(ValueError, match="non-empty"):
            ring.push_from(b"")
    finally:
        area.close()


def test_records_come_out_in_order_with_their_bytes() -> None:
    area = SharedArea(2, 4096)
    try:
        ring = area.ring(0, 1)
        for payload in (b"a", b"hello world", bytes(range(200))):
            assert ring.push_from(payload) == len(payload)
        assert drain(ring) == [b"a", b"hello world", bytes(range(200))]
        assert ring.used == 0
    finally:
        area.close()


def test_full_ring_refuses_then_accepts_after_the_consumer_drains() -> None:
    area = SharedArea(2, 4096)
    try:
        ring = area.ring(0, 1)
        payload = b"x" * 1000
        pushed = 0
        while ring.push_from(payload) == len(payload):
            pushed += 1
        assert pushed == 4096 // 1008
        assert len(drain(ring)) == pushed
        assert ring.push_from(payload) == len(payload)
    finally:
        area.close()


def test_payload_larger_than_the_ring_streams_through_in_fragments() -> None:
    area = SharedArea(2, 4096)
    try:
        ring = area.ring(0, 1)
        payload = os.urandom(50_000)
        offset = 0
        received: list[bytes] = []
        partial = bytearray()
        while offset < len(payload):
            offset = ring.push_from(payload, offset)
            received += drain(ring, partial)
        received += drain(ring, partial)
        assert received == [payload]
    finally:
        area.close()


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=60),
    drain_every=st.integers(min_value=1, max_value=7),
)
def test_random_sizes_wrap_around_in_order(sizes: list[int], drain_every: int) -> None:
    area = SharedArea(2, 4096)
    try:
        ring = area.ring(0, 1)
        sent = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
        received: list[bytes] = []
        partial = bytearray()
        for i, payload in enumerate(sent):
            offset = 0
            while True:
                new = ring.push_from(payload, offset)
                if new == len(payload):
                    break
                offset = new
                received += drain(ring, partial)
            if i % drain_every == 0:
                received += drain(ring, partial)
        received += drain(ring, partial)
        assert received == sent
    finally:
        area.close()


def test_each_pair_has_its_own_ring() -> None:
    area = SharedArea(3, 4096)
    try:
        for src in range(3):
            for dst in range(3):
                if src != dst:
                    area.ring(src, dst).push_from(f"{src}->{dst}".encode())
        for src in range(3):
            for dst in range(3):
                if src != dst:
                    assert drain(area.ring(src, dst)) == [f"{src}->{dst}".encode()]
    finally:
        area.close()


def test_sleep_announcement_makes_the_producer_ring_exactly_once() -> None:
    area = SharedArea(2, 4096)
    try:
        array, rings = area.inbound_array(1)
        flag = area.sleeping_flag(1)
        # Nothing queued: sleeping is safe and announced.
        assert lib.shard_prepare_sleep(flag, array, len(rings)) == 0
        area.ring(0, 1).push_from(b"wake up")
        assert lib.shard_take_doorbell(flag) == 1
        assert lib.shard_take_doorbell(flag) == 0  # a second producer does not ring
        # Data queued: the consumer must not sleep, and takes its flag back.
        assert lib.shard_prepare_sleep(flag, array, len(rings)) == 1
        assert lib.shard_take_doorbell(flag) == 0
    finally:
        area.close()


def test_full_ring_producer_is_woken_when_space_frees() -> None:
    area = SharedArea(2, 4096)
    try:
        ring = area.ring(0, 1)
        while ring.push_from(b"y" * 500):
            pass
        assert ring.want_space(500) is False
        doorbells = []
        while not ring.want_space(500):
            item = ring.peek()
            assert item is not None
            view, _ = item
            length = len(view)
            view.release()
            doorbells.append(ring.pop(length))
        # Each time the producer asks, the next pop says "ring it", once.
        assert doorbells[0] is True
        assert all(d is True for d in doorbells)
        assert ring.push_from(b"y" * 500) == 500
    finally:
        area.close()


STOP = b"STOP"  # no random payload has 4 bytes


def _consumer_process(area: SharedArea, result_fd: int) -> None:
    # Child: consume until an empty payload arrives, sleeping on the doorbell
    # whenever the ring is empty; report a digest of everything received.
    ring = area.ring(0, 1)
    array, rings = area.inbound_array(1)
    flag = area.sleeping_flag(1)
    digest = hashlib.sha256()
    count = 0
    partial = bytearray()
    done = False
    while not done:
        for payload in drain(ring, partial, area):
            if payload == STOP:
                done = True
                break
            digest.update(payload)
            count += 1
        if done:
            break
        if lib.shard_prepare_sleep(flag, array, len(rings)) == 0:
            select.select([area.doorbells[1]], [], [], 5.0)
            lib.shard_end_sleep(flag)
            try:
                os.eventfd_read(area.doorbells[1])
            except BlockingIOError:
                pass
    os.write(result_fd, f"{count} {digest.hexdigest()}".encode())


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_two_processes_exchange_every_payload_in_order(seed: int) -> None:
    area = SharedArea(2, 8192)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_fd)
            _consumer_process(area, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        rng = random.Random(seed)
        ring = area.ring(0, 1)
        flag = area.sleeping_flag(1)
        digest = hashlib.sha256()
        payloads = [rng.randbytes(rng.choice((1, 7, 100, 3000, 20_000))) for _ in range(300)]
        payloads.append(STOP)
        for payload in payloads:
            digest.update(payload)
            offset = 0
            while True:
                offset = ring.push_from(payload, offset)
                if lib.shard_take_doorbell(flag):
                    area.ring_doorbell(1)
                if offset == len(payload):
                    break
                # Full: ask for a doorbell, and wait for it unless space appeared.
                if not ring.want_space(min(len(payload) - offset, ring.fragment_size)):
                    select.select([area.doorbells[0]], [], [], 0.05)
                    try:
                        os.eventfd_read(area.doorbells[0])
                    except BlockingIOError:
                        pass
        result = b""
        while chunk := os.read(read_fd, 200):
            result += chunk
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        count, hexdigest = result.decode().split()
        expected = hashlib.sha256()
        for payload in payloads[:-1]:
            expected.update(payload)
        assert int(count) == len(payloads) - 1
        assert hexdigest == expected.hexdigest()
    finally:
        os.close(read_fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        area.close()
