"""A piece of memcached's text protocol, sans-io: bytes in, requests out.

Requests are tuples: ("get", keys), ("set", key, flags, exptime, value),
("delete", key), ("stats",), or ("error", reply line).
"""


class Parser:
    def __init__(self):
        self.buffer = bytearray()
        self.header = None  # a set's (key, flags, exptime, size), until its data is here

    def feed(self, data):
        """Take the next bytes from the client; return the requests they complete."""
        self.buffer += data
        requests = []
        while True:
            if self.header is not None:  # waiting for a data block
                key, flags, exptime, size = self.header
                if len(self.buffer) < size + 2:
                    break
                block = bytes(self.buffer[: size + 2])
                del self.buffer[: size + 2]
                self.header = None
                if block.endswith(b"\r\n"):
                    requests.append(("set", key, flags, exptime, block[:-2]))
                else:
                    requests.append(("error", b"CLIENT_ERROR bad data chunk"))
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break  # the rest of the line has not arrived yet
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            request = self.parse_line(line.split())
            if request is not None:
                requests.append(request)
        return requests

    def parse_line(self, words):
        if words[:1] == [b"get"] and len(words) > 1:
            return ("get", words[1:])
        if words[:1] == [b"set"] and len(words) == 5 and all(w.isdigit() for w in words[2:]):
            key, flags, exptime, size = words[1], *map(int, words[2:])
            self.header = (key, flags, exptime, size)
            return None  # complete once the data block is in
        if words[:1] == [b"delete"] and len(words) == 2:
            return ("delete", words[1])
        if words == [b"stats"]:
            return ("stats",)
        return ("error", b"ERROR")


def value_reply(key, flags, value):
    return b"VALUE %s %d %d\r\n%s\r\n" % (key, flags, len(value), value)
