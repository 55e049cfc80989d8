#!/usr/bin/env python3
"""socketserver_member: a member built only from Python's socketserver module.

Python's standard servers set SO_REUSEPORT through the class attribute
allow_reuse_port (Python 3.11+), so this member shows that such a program joins
a shared port unmodified. Same line protocol as tcp_member/udp_member:

  TCP: client sends "HELLO <token>\\n"; reply "<id> <token>\\n"; --log gets "<token>\\n".
  UDP: reply "<id> <payload>"; --log gets "<src-addr>:<src-port> <first token>\\n".

Exit statuses follow members/member_exit.h where they apply: 1 usage, 2 bind,
3 setsockopt(SO_REUSEPORT), 4 listen, 7 other; 0 on SIGTERM/SIGINT.
"""

import argparse
import errno
import os
import signal
import socket
import socketserver
import sys

EXIT_USAGE, EXIT_BIND, EXIT_REUSEPORT, EXIT_LISTEN, EXIT_OTHER = 1, 2, 3, 4, 7
REQUEST_TIMEOUT_S = 5


def fail(what, err, status):
    name = errno.errorcode.get(err.errno, "E?") if err.errno else "E?"
    sys.stderr.write(f"socketserver_member: {what}: {err.strerror or err} ({name})\n")
    sys.exit(status)


class RequestLog:
    """One os.write per line on an O_APPEND fd: lines from handler threads never
    interleave, and a line is written before its reply is sent."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644) if path else None

    def append(self, text):
        if self.fd is not None:
            os.write(self.fd, text.encode() + b"\n")


def family_for(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_number(text):
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 65535], got {text!r}")
    return port


def numeric_host(text):
    """Like the C members: numeric addresses only, so a typo is a usage error."""
    try:
        socket.inet_pton(family_for(text), text)
    except OSError:
        raise argparse.ArgumentTypeError(f"not a numeric IPv4 or IPv6 address: {text!r}")
    return text


class SetupStepsMixin:
    """Maps failures in the server's own bind/listen steps to the members' exit statuses."""

    allow_reuse_port = True

    def server_bind(self):
        try:
            if self.allow_reuse_port:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        except OSError as err:
            fail("setsockopt(SO_REUSEPORT)", err, EXIT_REUSEPORT)
        # The base class sets SO_REUSEPORT again (harmlessly) and binds.
        try:
            super().server_bind()
        except OSError as err:
            fail("bind", err, EXIT_BIND)

    def server_activate(self):
        try:
            super().server_activate()
        except OSError as err:
            fail("listen", err, EXIT_LISTEN)


def make_tcp_server(args, log):
    class LineHandler(socketserver.StreamRequestHandler):
        timeout = REQUEST_TIMEOUT_S

        def handle(self):
            try:
                line = self.rfile.readline(512)
            except OSError:
                return  # silent or vanished client: no reply
            if not line.endswith(b"\n") or not line.startswith(b"HELLO "):
                return
            token = line[len(b"HELLO "):].rstrip(b"\r\n").decode(errors="replace")
            if not token:
                return
            log.append(token)
            try:
                self.wfile.write(f"{args.id} {token}\n".encode())
            except OSError:
                pass

    class Server(SetupStepsMixin, socketserver.ThreadingTCPServer):
        address_family = family_for(args.host)
        daemon_threads = True
        # The default backlog of 5 overflows under concurrent load and the
        # dropped SYNs cost clients a 1 s retransmit.
        request_queue_size = 128

    return Server((args.host, args.port), LineHandler)


def make_udp_server(args, log):
    class DatagramHandler(socketserver.BaseRequestHandler):
        def handle(self):
            payload, sock = self.request
            tokens = payload.split(None, 1)
            first = tokens[0].decode(errors="replace") if tokens else ""
            log.append(f"{self.client_address[0]}:{self.client_address[1]} {first}")
            sock.sendto(args.id.encode() + b" " + payload, self.client_address)

    class Server(SetupStepsMixin, socketserver.UDPServer):
        address_family = family_for(args.host)
        max_packet_size = 2048

    return Server((args.host, args.port), DatagramHandler)


def write_ready_file(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.rename(tmp, path)


class MemberArgumentParser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage, which for members means "bind failed"."""

    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write(f"socketserver_member: {message}\n")
        sys.exit(EXIT_USAGE)


def main():
    parser = MemberArgumentParser(description=__doc__)
    parser.add_argument("--proto", choices=["tcp", "udp"], default="tcp")
    parser.add_argument("--host", type=numeric_host, default="0.0.0.0")
    parser.add_argument("--port", type=port_number, default=0)
    parser.add_argument("--id", default=f"pid{os.getpid()}")
    parser.add_argument("--ready-file")
    parser.add_argument("--log")
    args = parser.parse_args()
    log = RequestLog(args.log)
    make = make_tcp_server if args.proto == "tcp" else make_udp_server
    server = make(args, log)  # binds and (TCP) listens

    def close_and_exit(signo, frame):
        server.socket.close()
        os._exit(0)

    signal.signal(signal.SIGTERM, close_and_exit)
    signal.signal(signal.SIGINT, close_and_exit)
    if args.ready_file:
        write_ready_file(args.ready_file, server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    try:
        main()
    except OSError as err:
        fail("error", err, EXIT_OTHER)
