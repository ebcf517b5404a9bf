import functools

import httpx

import shardio
import shardio_net
from shardio_net import http
from shardio_net.http_client import AsyncHTTPTransport


async def server(stream):
    """A tiny HTTP/1.1 server: GET /count/N streams N lines, one by one."""
    conn = http.ServerConnection()
    while True:
        event = conn.next_event()
        if event is http.NEED_DATA:
            conn.receive_data(await stream.receive_some())
        elif isinstance(event, http.Request):
            count = int(event.target.rsplit(b"/", 1)[1])
        elif event is http.PAUSED:  # the request is complete: respond
            await stream.send_all(conn.send(http.Response(200)))  # chunked
            for i in range(count):
                await stream.send_all(conn.send(http.Data(b"line %d\n" % i)))
            await stream.send_all(conn.send(http.EndOfMessage()))
        elif isinstance(event, http.ConnectionClosed):
            return


async def main():
    async with shardio.open_nursery() as nursery:
        serve = functools.partial(shardio_net.serve_tcp, server, 0, host="127.0.0.1")
        [(host, port)] = await nursery.start(serve)

        async with httpx.AsyncClient(
            transport=AsyncHTTPTransport(), base_url=f"http://{host}:{port}"
        ) as client:
            response = await client.get("/count/2")
            print(response.status_code, response.http_version, repr(response.text))
            async with client.stream("GET", "/count/3") as response:
                async for line in response.aiter_lines():
                    print("streamed:", line)
        nursery.cancel_scope.cancel()


shardio.run(main)
