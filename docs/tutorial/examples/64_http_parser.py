from shardio_net import http


def events(conn):
    """Print every event the connection can produce now."""
    while True:
        event = conn.next_event()
        print("  ", event)
        if event is http.NEED_DATA or event is http.PAUSED:
            return


def respond(conn, body, headers=()):
    data = conn.send(http.Response(200, headers))
    data += conn.send(http.Data(body)) + conn.send(http.EndOfMessage())
    print("   send:", data)


conn = http.ServerConnection()
print("two pipelined requests, the second one incomplete:")
conn.receive_data(
    b"GET /hello HTTP/1.1\r\nHost: example.org\r\n\r\n"
    b"POST /echo HTTP/1.1\r\nHost: example.org\r\nContent-Length: 5\r\n\r\nhel"
)
events(conn)  # the second request waits until the first has its response
respond(conn, b"hi!", [(b"content-length", b"3")])
events(conn)
print("the rest of the body arrives:")
conn.receive_data(b"lo")
events(conn)
respond(conn, b"hello")  # no Content-Length: the body is sent chunked

print("a client that sends too much header:")
conn = http.ServerConnection(max_header_size=100)
conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * 200)
try:
    conn.next_event()
except http.RemoteProtocolError as error:
    print(f"   RemoteProtocolError({str(error)!r}, status_code={error.status_code})")
    print("   send:", conn.send(http.Response(error.status_code, [(b"content-length", b"0")])))
    print("   must_close:", conn.must_close)
