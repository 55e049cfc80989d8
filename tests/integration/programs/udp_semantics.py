#!/usr/bin/env python3
"""A UDP server that reports what the socket API showed it, for comparing the
emulation with the kernel's own SO_REUSEPORT. Plain stdlib sockets.

Each request datagram names a check; the reply describes what recv*/ioctl
returned. Usage: udp_semantics.py --host H --port P --ready-file F [--v6]
"""
import argparse
import array
import fcntl
import os
import socket
import struct
import termios
import zlib

IP_PKTINFO = 8
RECEIVE_BUFFER = 256 * 1024
MSG_TRUNC = 0x20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file", required=True)
    args = ap.parse_args()
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # Room for the BIG check's 65,507-byte datagram whatever the host's
    # net.core.rmem_default (the kernel caps this at rmem_max).
    if s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < RECEIVE_BUFFER:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    if family == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    else:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    port = args.port
    if port == 0:
        # Linux may autobind a SO_REUSEPORT socket to a port another socket of
        # this uid already shares (tests in parallel); take a free one first.
        probe = socket.socket(family, socket.SOCK_DGRAM)
        probe.bind((args.host, 0))
        port = probe.getsockname()[1]
        probe.close()
    s.bind((args.host, port))
    port = s.getsockname()[1]
    with open(args.ready_file + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(args.ready_file + ".tmp", args.ready_file)

    while True:
        # What the next datagram is, without taking it: MSG_PEEK (which waits
        # for it), then FIONREAD (the size of the next datagram).
        peeked, peek_from = s.recvfrom(65536, socket.MSG_PEEK)
        size = array.array("i", [0])
        fcntl.ioctl(s, termios.FIONREAD, size)
        kind = peeked.split(b" ", 1)[0] if peeked else b"EMPTY"
        if kind == b"QUIT":
            s.recvfrom(16)
            break
        if kind == b"TRUNC":
            # A 10-byte buffer: data cut, MSG_TRUNC in msg_flags, the cut length returned.
            data, anc, flags, addr = s.recvmsg(10)
            reply = "TRUNC len=%d truncflag=%d data=%s fionread=%d" % (len(data), 1 if flags & MSG_TRUNC else 0,
                                                                         data.decode(), size[0])
        elif kind == b"TRUELEN":
            # MSG_TRUNC as a flag: the datagram's real length is returned.
            buf = bytearray(4)
            n = s.recv_into(buf, 4, MSG_TRUNC)
            reply = "TRUELEN n=%d buf=%s fionread=%d" % (n, bytes(buf).decode(), size[0])
            addr = peek_from
        elif kind == b"EMPTY":
            data, addr = s.recvfrom(100)
            reply = "EMPTY len=%d fionread=%d" % (len(data), size[0])
        elif kind == b"BIG":
            data, addr = s.recvfrom(65536)
            reply = "BIG len=%d crc=%08x fionread=%d" % (len(data), zlib.crc32(data), size[0])
        elif kind == b"PKTINFO":
            data, anc, flags, addr = s.recvmsg(100, 256)
            info = "none"
            for level, ctype, cdata in anc:
                if level == socket.IPPROTO_IP and ctype == IP_PKTINFO:
                    ifindex, spec, dst = struct.unpack("i4s4s", cdata[:12])
                    info = "v4 ifindex=%d dst=%s" % (ifindex, socket.inet_ntop(socket.AF_INET, dst))
                elif level == socket.IPPROTO_IPV6 and ctype == socket.IPV6_PKTINFO:
                    dst, ifindex = struct.unpack("16sI", cdata[:20])
                    info = "v6 ifindex=%d dst=%s" % (ifindex, socket.inet_ntop(socket.AF_INET6, dst))
            reply = "PKTINFO " + info
        elif kind == b"SMALLCTL":
            # A control buffer too small for the pktinfo: MSG_CTRUNC.
            data, anc, flags, addr = s.recvmsg(100, 1)
            reply = "SMALLCTL ctrunc=%d" % (1 if flags & socket.MSG_CTRUNC else 0)
        else:
            data, addr = s.recvfrom(65536)
            reply = "ECHO " + data.decode(errors="replace")
        reply += " peekmatch=%d from=%s" % (1 if peek_from == addr else 0, "same" if peek_from == addr else str(addr))
        s.sendto(reply.encode(), addr)


if __name__ == "__main__":
    main()
