import shardio
import shardio_net


async def uppercase_server(sock, count):
    buffer = bytearray(1500)
    for _ in range(count):
        size, sender = await sock.recvfrom_into(buffer)  # one datagram, no copy
        await sock.sendto(bytes(buffer[:size]).upper(), sender)


async def main():
    server = await shardio_net.open_udp_socket("127.0.0.1", 0)
    client = await shardio_net.open_udp_socket("127.0.0.1", 0)
    async with server, client, shardio.open_nursery() as nursery:
        nursery.start_soon(uppercase_server, server, 3)
        await client.connect(server.getsockname())  # send() goes there from now on
        for word in (b"one", b"two", b"three"):
            await client.send(word)
            data, sender = await client.recvfrom()
            print(f"{word!r} came back as {data!r}, from the server: {sender == server.getsockname()}")


shardio.run(main)
