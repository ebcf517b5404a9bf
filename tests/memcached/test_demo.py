"""``make demo``: the server on every shard under a load from the built-in
client, which reports throughput and latency per shard, finds every value
it reads back as written, and stops by itself."""

from __future__ import annotations

import re
import subprocess
import sys

from examples.memcached.demo import check_value, value_for

from .server_process import ROOT


def test_the_demo_loads_the_server_checks_the_values_and_stops() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.memcached.demo", "--seconds", "1.5", "--shards", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "listening on 127.0.0.1:" in out
    assert re.search(r"^ +1 s +[\d,]+ requests/s +shard 0: +[\d,]+ +shard 1: +[\d,]+$", out, re.M)
    rows = re.findall(r"^ +([01]) +8 +([\d,]+) +([\d,]+)((?: +[\d.]+){4})$", out, re.M)
    assert [row[0] for row in rows] == ["0", "1"]
    for _, requests, rate, latencies in rows:
        assert int(requests.replace(",", "")) > 0 and int(rate.replace(",", "")) > 0
        p50, p90, p99, p999 = map(float, latencies.split())
        assert 0 < p50 <= p90 <= p99 <= p999
    assert "1,600 keys read back: all as expected" in out
    assert re.search(r"server stopped; [\d.]+ s in all\n$", out)


def test_every_value_says_which_key_and_version_it_is() -> None:
    value = value_for(b"demo:00042", 7)
    assert 100 <= len(value) <= 1000 + len(b"demo:00042:7:")
    assert check_value(b"demo:00042", value) == 7
    for wrong in (value_for(b"demo:00043", 7), value[:-1], value[:-2] + b"xx", b"junk"):
        try:
            check_value(b"demo:00042", wrong)
        except ValueError:
            continue
        raise AssertionError(f"{wrong[:30]!r} passed the check")
