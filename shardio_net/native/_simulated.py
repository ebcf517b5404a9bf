"""simulated_pair: two native stacks joined by a simulated, faulty link."""

from __future__ import annotations

from ._stack import NativeStack
from .phy.faults import FaultInjector
from .phy.simulated import SimulatedLink
from .tcp.config import TcpConfig

__all__ = ["simulated_pair"]


def simulated_pair(
    address_a: str = "10.0.0.1",
    address_b: str = "10.0.0.2",
    *,
    loss: float = 0.0,
    duplicate: float = 0.0,
    reorder: float = 0.0,
    corrupt: float = 0.0,
    delay: float = 0.0,
    jitter: float = 0.0,
    rate: float | None = None,
    mtu: int = 1500,
    seed: int = 0,
    prefix_length: int = 24,
    tcp: TcpConfig | None = None,
) -> tuple[NativeStack, NativeStack]:
    """Two stacks on one simulated Ethernet link, in the current shard.

    ``delay`` is the link's one-way latency and ``rate`` its speed in bytes
    per second (``None``: unlimited); ``loss``, ``duplicate``, ``reorder``
    and ``corrupt`` are per-frame probabilities and ``jitter`` an extra
    random delay, applied in each direction (on each stack's receive path)
    by a :class:`~shardio_net.native.phy.FaultInjector`; ``mtu`` is the
    link's IP MTU. Everything random comes from ``seed`` (each direction and
    each stack draws from its own generator seeded from it), and everything
    timed from the run's clock: under :class:`shardio.testing.MockClock`
    the same seed gives the same packets, byte for byte. Must be called in
    a run; the stacks live until it ends (or until their ``close()``).
    """
    link = SimulatedLink(latency=delay, rate=rate, mtu=mtu)
    stacks = []
    for index, address in enumerate((address_a, address_b)):
        device = FaultInjector(
            link.attach(),
            loss=loss,
            duplicate=duplicate,
            reorder=reorder,
            corrupt=corrupt,
            jitter=jitter,
            seed=seed * 4 + index,
        )
        stacks.append(
            NativeStack(
                device,
                address,
                prefix_length=prefix_length,
                tcp=tcp,
                seed=seed * 4 + 2 + index,
            )
        )
    return stacks[0], stacks[1]
