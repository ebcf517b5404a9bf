import http.client
import signal
import socket
import subprocess
import sys

import tap_namespace
from tap_namespace import KERNEL, STACK

NATIVE = ["--network-stack", "native", "--tap-device", "tap0"]
NATIVE += ["--host-ipv4-addr", STACK, "--gw-ipv4-addr", KERNEL]


def start(*command):
    """Start an example server, and wait for the line saying where it listens."""
    server = subprocess.Popen([sys.executable, "-m", *command], stdout=subprocess.PIPE, text=True)
    print("server:", server.stdout.readline(), end="")
    return server


def stop(server):
    """Ctrl-C, as a user would type it."""
    server.send_signal(signal.SIGINT)
    rest, _ = server.communicate()
    print("server:", rest, end="")
    print("server: exit status", server.returncode)


tap_namespace.enter()

server = start("examples.echo", "--smp", "2", *NATIVE)
for text in [b"hello", b"from the kernel's side"]:
    with socket.create_connection((STACK, 7000)) as sock:
        sock.sendall(text)
        sock.shutdown(socket.SHUT_WR)
        print("echo client got", sock.recv(100))
stop(server)

server = start("examples.httpd", "--smp", "2", *NATIVE)
connection = http.client.HTTPConnection(STACK, 8080)
for path in ["/", "/nowhere"]:
    connection.request("GET", path)
    response = connection.getresponse()
    print("GET", path, "->", response.status, response.read())
shards = set()
for _ in range(10):  # ten requests on the same connection
    connection.request("GET", "/shard")
    shards.add(connection.getresponse().read())
print("ten GET /shard on one connection, served by", len(shards), "shard")
connection.close()
stop(server)
