"""``--dhcp`` on every shard: httpd on the native stack leases its address from
dnsmasq, and the kernel reaches it on both shards.

The example server runs as a real process with Seastar's flags, in a network
namespace the test makes, as a user would run it. Without root,
/dev/net/tun or dnsmasq the test skips (under CI it fails).
"""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._netns import configure_kernel_side, ip, network_namespace
from .test_tap_dhcp import _dnsmasq, _read

pytestmark = pytest.mark.requires_program("ip", "dnsmasq", apt="iproute2 dnsmasq-base")

ROOT = Path(__file__).parent.parent.parent


@pytest.fixture(autouse=True)
def netns() -> Iterator[None]:
    with network_namespace():
        yield


def test_httpd_with_dhcp_on_two_shards_serves_the_kernel_at_the_leased_address(
    tmp_path: Path,
) -> None:
    ip("tuntap", "add", "dev", "tap0", "mode", "tap", "multi_queue")
    configure_kernel_side("tap0")
    with _dnsmasq(tmp_path) as log:
        deadline = time.monotonic() + 60  # a bound on a hang, not a timing
        while "DHCP, IP range" not in _read(log) and time.monotonic() < deadline:
            time.sleep(0.02)
        command = [
            sys.executable, "-m", "examples.httpd", "--smp", "2", "--port", "8080",
            "--network-stack", "native", "--tap-device", "tap0", "--dhcp",
        ]  # fmt: skip
        server = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            match = re.search(r"native stack on tap0 at (10\.99\.0\.\d+) \(DHCP\)", line)
            assert match, line + server.stderr.read()  # type: ignore[union-attr]
            address = match.group(1)
            shards = set()
            for _ in range(40):
                conn = http.client.HTTPConnection(address, 8080, timeout=30)
                conn.request("GET", "/shard")
                shards.add(conn.getresponse().read())
                conn.close()
            # New connections come from new ports: the flows land on both shards.
            assert shards == {b"served by shard 0\n", b"served by shard 1\n"}
        finally:
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=30)
        assert "DHCPACK" in _read(log)
