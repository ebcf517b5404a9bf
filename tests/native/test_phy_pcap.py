"""PcapWriter: the file read back by Python and by tcpdump, reproducible
captures, truncation at the snapshot length, a failing disk, detach/close."""

from __future__ import annotations

import logging
import struct
import subprocess
from pathlib import Path

import pytest

from shardio import ClosedResourceError
from shardio_net.native.phy import FaultInjector, PcapWriter, SimulatedLink

from ._phy import drive, numbered_frame

Record = tuple[int, int, int, bytes]  # seconds, microseconds, original length, data


def read_pcap(path: Path) -> tuple[tuple[int, ...], list[Record]]:
    """The file header's fields and the records of a classic pcap file, as
    any reader decodes them (byte order from the magic)."""
    data = path.read_bytes()
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}[data[:4]]
    header = struct.unpack(order + "IHHiIII", data[:24])
    records: list[Record] = []
    offset = 24
    while offset < len(data):
        seconds, micros, captured, original = struct.unpack_from(order + "IIII", data, offset)
        offset += 16
        records.append((seconds, micros, original, data[offset : offset + captured]))
        offset += captured
    assert offset == len(data)
    return header, records


def ipv4_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(
    src_mac: bytes, dst_mac: bytes, src_port: int, dst_port: int, payload: bytes
) -> bytes:
    """An Ethernet + IPv4 + UDP frame from 10.0.0.1 to 10.0.0.2 (UDP
    checksum 0, which IPv4 allows), for tcpdump to decode."""
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        1,
        0,
        64,
        17,
        0,
        bytes([10, 0, 0, 1]),
        bytes([10, 0, 0, 2]),
    )
    ip = ip[:10] + struct.pack("!H", ipv4_checksum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


def test_capture_has_a_classic_ethernet_header_and_every_frame_both_ways(tmp_path: Path) -> None:
    link = SimulatedLink(latency=0.5)
    a, b = link.attach(), link.attach()
    path = tmp_path / "b.pcap"
    writer = PcapWriter(b, path)
    sent = numbered_frame(1, 100, dst=b.mac, src=a.mac)
    a.transmit([(sent,)], 1.0)
    [received] = writer.receive(1.5)
    reply = numbered_frame(2, 80, dst=a.mac, src=b.mac)
    # A frame in parts, as a stack sends one: header bytes and payload views.
    writer.transmit(
        [(reply[:14], memoryview(bytearray(reply))[14:40], memoryview(reply)[40:])], 2.000001
    )
    writer.close()
    header, records = read_pcap(path)
    assert header == (0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    assert records == [(1, 500000, 100, sent), (2, 1, 80, reply)]
    assert bytes(received) == sent
    assert [bytes(f) for f in a.receive(3.0)] == [reply]
    assert writer.statistics().frames_received == writer.statistics().frames_transmitted == 1
    assert writer.statistics().bytes_written == 24 + 16 + 100 + 16 + 80


def test_timestamp_rounding_up_to_a_whole_second_carries_into_the_seconds(tmp_path: Path) -> None:
    link = SimulatedLink()
    writer = PcapWriter(link.attach(), tmp_path / "a.pcap")
    writer.transmit([(numbered_frame(1),)], 6.9999996)
    writer.close()
    _, [(seconds, micros, _, _)] = read_pcap(tmp_path / "a.pcap")
    assert (seconds, micros) == (7, 0)


def test_frame_longer_than_the_snapshot_length_is_cut_and_keeps_its_length(tmp_path: Path) -> None:
    link = SimulatedLink(mtu=65535)
    a, b = link.attach(), link.attach()
    writer = PcapWriter(b, tmp_path / "jumbo.pcap")
    jumbo = numbered_frame(1, 65549)
    a.transmit([(jumbo,)], 0.0)
    [frame] = writer.receive(0.0)
    assert frame.nbytes == 65549
    writer.close()
    _, [(_, _, original, data)] = read_pcap(tmp_path / "jumbo.pcap")
    assert original == 65549
    assert data == jumbo[:65535]


def captured_run(path: Path, seed: int) -> bytes:
    link = SimulatedLink(latency=0.001, rate=1_000_000)
    a, b = link.attach(), link.attach()
    sender = PcapWriter(a, path.with_suffix(".a.pcap"))
    receiver = PcapWriter(
        FaultInjector(
            b, loss=0.05, duplicate=0.02, reorder=0.05, corrupt=0.02, jitter=0.0005, seed=seed
        ),
        path,
    )
    sends = [
        (i * 0.0002, [numbered_frame(i * 2 + k, 100 + 50 * k) for k in range(2)])
        for i in range(1000)
    ]
    drive(sends, sender, receiver)
    sender.close()
    receiver.close()
    return path.read_bytes()


def test_same_seed_gives_the_same_capture_byte_for_byte_and_another_seed_does_not(
    tmp_path: Path,
) -> None:
    first = captured_run(tmp_path / "1.pcap", seed=21)
    assert first == captured_run(tmp_path / "2.pcap", seed=21)
    assert first != captured_run(tmp_path / "3.pcap", seed=22)
    _, records = read_pcap(tmp_path / "1.pcap")
    assert len(records) > 1800


@pytest.mark.requires_program("tcpdump", apt="tcpdump")
def test_tcpdump_reads_the_capture_and_decodes_each_frame(tmp_path: Path) -> None:
    link = SimulatedLink(latency=0.25)
    a, b = link.attach(), link.attach()
    path = tmp_path / "udp.pcap"
    sender = PcapWriter(a, path)
    frames = [
        udp_frame(a.mac, b.mac, 1234, 5678, b"hello"),
        udp_frame(a.mac, b.mac, 1234, 5678, b"x" * 300),
    ]
    sender.transmit([(frames[0],)], 1.0)
    sender.transmit([(frames[1][:42], memoryview(frames[1])[42:])], 2.5)
    b.transmit([(numbered_frame(9, dst=a.mac, src=b.mac),)], 3.0)
    assert len(sender.receive(3.25)) == 1
    sender.close()
    result = subprocess.run(
        ["tcpdump", "-r", str(path), "-nn", "-tt", "-e"], capture_output=True, text=True, check=True
    )
    assert "link-type EN10MB (Ethernet)" in result.stderr
    # One line per frame (a frame tcpdump cannot decode is followed by its
    # hex dump, indented).
    lines = [line for line in result.stdout.splitlines() if not line.startswith("\t")]
    assert len(lines) == 3
    assert lines[0].startswith("1.000000 02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype IPv4")
    assert lines[0].endswith("10.0.0.1.1234 > 10.0.0.2.5678: UDP, length 5")
    assert lines[1].startswith("2.500000 ")
    assert lines[1].endswith("UDP, length 300")
    assert lines[2].startswith(
        "3.250000 02:00:00:00:00:02 > 02:00:00:00:00:01, ethertype Unknown (0x88b5)"
    )


def test_failing_disk_stops_the_capture_and_the_frames_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    writer = PcapWriter(a, "/dev/full")
    frames = [(numbered_frame(i, 1000),) for i in range(100)]
    with caplog.at_level(logging.WARNING, logger="shardio_net.native"):
        writer.transmit(frames, 0.0)
    assert len(b.receive(0.0)) == 100
    error = writer.statistics().error
    assert error is not None
    assert "No space left on device" in error
    assert "pcap capture to /dev/full stopped" in caplog.text
    # Later frames still go through, unrecorded.
    writer.transmit(frames[:5], 1.0)
    assert len(b.receive(1.0)) == 5
    assert writer.statistics().frames_transmitted == 100
    writer.close()


def test_flush_makes_frames_so_far_readable_while_capturing(tmp_path: Path) -> None:
    link = SimulatedLink()
    writer = PcapWriter(link.attach(), tmp_path / "live.pcap")
    writer.transmit([(numbered_frame(i),) for i in range(3)], 0.0)
    writer.flush()
    _, records = read_pcap(tmp_path / "live.pcap")
    assert len(records) == 3
    writer.close()


def test_detach_ends_the_capture_and_hands_back_the_device_still_open(tmp_path: Path) -> None:
    link = SimulatedLink()
    a, b = link.attach(), link.attach()
    writer = PcapWriter(b, tmp_path / "b.pcap")
    a.transmit([(numbered_frame(1),)], 0.0)
    assert len(writer.receive(0.0)) == 1
    assert writer.detach() is b
    with pytest.raises(ClosedResourceError):
        writer.receive(1.0)
    writer.close()
    a.transmit([(numbered_frame(2),)], 1.0)
    assert len(b.receive(1.0)) == 1
    _, records = read_pcap(tmp_path / "b.pcap")
    assert len(records) == 1


def test_close_ends_the_capture_and_closes_the_wrapped_device(tmp_path: Path) -> None:
    link = SimulatedLink()
    b = link.attach()
    writer = PcapWriter(b, tmp_path / "b.pcap")
    writer.close()
    writer.close()
    assert b.link is None
    with pytest.raises(ClosedResourceError):
        writer.transmit([], 0.0)


def test_capture_to_a_path_that_cannot_be_created_raises_at_once(tmp_path: Path) -> None:
    link = SimulatedLink()
    with pytest.raises(FileNotFoundError):
        PcapWriter(link.attach(), tmp_path / "no such directory" / "x.pcap")
