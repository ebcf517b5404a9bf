"""shardio's own TCP/IP stack (Seastar's native stack): one stack per shard.

Layers as smoltcp's: ``wire`` (packet formats), ``phy`` (devices), ``tcp``
(the connection as a sans-io state machine), then the interface and the
sockets on top. See docs/design/native-stack.md.
"""
