import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # the repository, where examples/ is


def start(data_dir):
    """Start examples/memcached on two shards, durable in ``data_dir``."""
    command = [sys.executable, "-m", "examples.memcached", "--smp", "2", "-p", "0"]
    command += ["-l", "127.0.0.1", "--data-dir", data_dir]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = server.stdout.readline()  # "memcached on 2 shard(s), posix stack, listening on 127.0.0.1:PORT"
    return server, int(line.rsplit(b":", 1)[1])


def talk(port, request, until):
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(request)
        reply = b""
        while not reply.endswith(until):
            reply += client.recv(65536)
    return reply


with tempfile.TemporaryDirectory(dir="/var/tmp") as data_dir:
    server, port = start(data_dir)
    script = b"set a 0 0 5\r\nhello\r\nset b 7 3600 5\r\nworld\r\nset n 0 0 2\r\n41\r\nincr n 1\r\n"
    print(talk(port, script, until=b"42\r\n"))
    server.kill()  # SIGKILL: no goodbye, no flush, nothing
    server.wait()
    server.stdout.close()
    server.stderr.close()

    server, port = start(data_dir)
    print(talk(port, b"gets a b n\r\n", until=b"END\r\n"))
    server.send_signal(signal.SIGINT)  # Ctrl-C: an orderly stop
    _, errors = server.communicate()
    print("exit status", server.returncode)
    for line in sorted(errors.decode().splitlines()):
        print(line)
