"""Bounded client load for the real-programs suite: HTTP GETs over TCP, DNS
queries and plain datagrams over UDP, counted as answered or failed.

A Load runs in threads until stop() or until `limit` requests were made;
every request has a timeout, so a run always ends.
"""
import socket
import ssl
import struct
import threading
import time


class Load:
    def __init__(self, request, concurrency=4, limit=2000, pace=0.0):
        self.request = request  # callable(index) -> None on success, or a failure text
        self.concurrency = concurrency
        self.limit = limit
        self.pace = pace
        self.lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.examples = []
        self.stopping = threading.Event()
        self.threads = []

    def _next(self):
        with self.lock:
            if self.stopping.is_set() or self.sent >= self.limit:
                return None
            self.sent += 1
            return self.sent

    def _run(self):
        while True:
            index = self._next()
            if index is None:
                return
            problem = self.request(index)
            if problem:
                with self.lock:
                    self.failed += 1
                    if len(self.examples) < 5:
                        self.examples.append(problem)
            if self.pace:
                time.sleep(self.pace)

    def start(self):
        for _ in range(self.concurrency):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def wait_for(self, count, timeout=60.0):
        """Until at least `count` requests were made (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.sent >= count or self.sent >= self.limit:
                    return
            time.sleep(0.005)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        return self

    def run(self, count):
        """count requests, then stop."""
        self.limit = count
        self.start()
        for t in self.threads:
            t.join(120)
        return self

    def summary(self):
        return f"{self.failed} failed of {self.sent}" + (f" (e.g. {self.examples})" if self.examples else "")


def http_get(port, host="127.0.0.1", path="/", timeout=5.0, tls=False):
    def request(index):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect((host, port))
                conn = s
                if tls:
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    conn = ctx.wrap_socket(s)
                conn.sendall(f"GET {path} HTTP/1.0\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if not data.startswith(b"HTTP/1.") or b" 200 " not in data.split(b"\r\n", 1)[0]:
                    return f"#{index}: bad reply {data[:60]!r}"
                return None
        except OSError as e:
            return f"#{index}: {type(e).__name__}: {e}"
    return request


def line_echo(port, host="127.0.0.1", timeout=5.0):
    """A TCP request: 'HELLO <n>\\n', any reply line that ends with <n>."""
    def request(index):
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.sendall(f"HELLO {index}\n".encode())
                data = b""
                while b"\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if not data.rstrip().endswith(str(index).encode()):
                    return f"#{index}: bad reply {data[:60]!r}"
                return None
        except OSError as e:
            return f"#{index}: {type(e).__name__}: {e}"
    return request


def udp_echo(port, host="127.0.0.1", timeout=2.0, retries=1):
    def request(index):
        payload = f"ping {index}".encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            for _ in range(retries + 1):
                s.sendto(payload, (host, port))
                try:
                    data, _ = s.recvfrom(2048)
                except socket.timeout:
                    continue
                if data.endswith(payload):
                    return None
                return f"#{index}: bad reply {data[:60]!r}"
        return f"#{index}: no reply"
    return request


def dns_query(port, name, host="127.0.0.1", timeout=2.0, retries=1):
    """An A query for `name`; any NOERROR answer with a record counts."""
    def request(index):
        qid = index & 0xFFFF
        question = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"
        packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            for _ in range(retries + 1):
                s.sendto(packet, (host, port))
                try:
                    data, _ = s.recvfrom(4096)
                except socket.timeout:
                    continue
                rid, flags, _, answers = struct.unpack(">HHHH", data[:8])
                if rid == qid and flags & 0xF == 0 and answers > 0:
                    return None
                return f"#{index}: rcode {flags & 0xF}, {answers} answers"
        return f"#{index}: no answer"
    return request
