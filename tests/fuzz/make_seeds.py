#!/usr/bin/env python3
"""Writes the seed corpora of the fuzzers: tests/fuzz/corpus/<fuzzer>/<seed>.

Each seed is a meaningful starting point in that fuzzer's input format (see the
comment at the top of each fuzzer, and control_input.h): valid STATUS, BIND,
LISTEN and ATTACH conversations, and the malformed records the broker must
answer with an error (wrong magic or version, short headers, payload_size past
the end, unknown opcodes, replies sent as requests, too many fds, oversized
records). The generated files are committed; run this again after changing a
format, and commit the result:

    python3 tests/fuzz/make_seeds.py

Each corpus directory is rewritten from scratch.
"""

import os
import shutil
import socket
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# include/reuseport/protocol.h
RP_MAGIC = 0x31505052
RP_VERSION = 1
RP_MAX_RECORD = 65536 + 256
OP_BIND, OP_LISTEN, OP_ATTACH, OP_REJOIN, OP_TAKEOVER, OP_STATUS = 1, 2, 3, 4, 5, 16
OP_CONNECTION, OP_DATAGRAM = 32, 33
FLAG_REPLY, FLAG_MORE = 1, 2
PROTO_TCP, PROTO_UDP = 6, 17
AF_INET, AF_INET6 = 2, 10
STATUS_TEXT, STATUS_JSON, STATUS_PROMETHEUS = 0, 1, 2

# fd_kinds.h
PIPE_READ, PIPE_WRITE, DEV_NULL, EPOLL, UNIX_STREAM = 0, 1, 2, 3, 4
TCP4, UDP4, TCP6, UDP6 = 5, 6, 7, 8
TCP4_LOOPBACK, UDP4_LOOPBACK, TCP4_WILDCARD, TCP6_WILDCARD, UDP6_LOOPBACK = 9, 10, 11, 12, 13
TCP4_LISTENING, UDP4_CONNECTED = 14, 15
# control_input.h
LATEST_CHANNEL, LATEST_GROUP_SOCKET, LATEST_CHANNEL_PEER, NEW_PAIR, NEW_PAIR_OTHER_END = 16, 17, 18, 19, 20
CLOSE_LINK_LENGTH = 0xFFFF

GROUP_PORT = 29311  # control_fuzzer.cc kGroupPort
ALLOWED_PORT = 1022  # control_fuzzer.cc kAllowedPorts


def header(opcode, payload_size, request_id=1, magic=RP_MAGIC, version=RP_VERSION, header_size=32, flags=0,
           status=0, reserved=0):
    return struct.pack("<IHHHHIQiI", magic, version, header_size, opcode, flags, payload_size, request_id, status,
                       reserved)


def record(opcode, payload=b"", trailing=b"", **kw):
    return header(opcode, len(payload), **kw) + payload + trailing


def address(family, port, text, family_field=None):
    """An rp_address; family_field, if given, is written instead of family."""
    raw = socket.inet_pton(socket.AF_INET if family == AF_INET else socket.AF_INET6, text)
    return struct.pack("<HHII16s", family if family_field is None else family_field, port, 0, 0, raw)


def bind_payload(family=AF_INET, port=GROUP_PORT, text="127.0.0.1", protocol=PROTO_TCP, v6only=0):
    return address(family, port, text) + struct.pack("<BBHI", protocol, v6only, 0, 0)


def bind(request_id=1, **kw):
    return record(OP_BIND, bind_payload(**kw), request_id=request_id)


def listen(backlog=16, request_id=2):
    return record(OP_LISTEN, struct.pack("<iI", backlog, 0), request_id=request_id)


def status(fmt=STATUS_TEXT, request_id=3):
    return record(OP_STATUS, struct.pack("<II", fmt, 0), request_id=request_id)


def attach(request_id=4):
    return record(OP_ATTACH, request_id=request_id)


def rejoin(request_id=5, family=AF_INET, port=GROUP_PORT, text="127.0.0.1", protocol=PROTO_TCP, listening=1,
           family_field=None):
    payload = address(family, port, text, family_field) + struct.pack("<BBBBiIQ", protocol, 0, listening, 0, 16, 0, 7)
    return record(OP_REJOIN, payload, request_id=request_id)


def takeover(request_id=6, payload=b""):
    return record(OP_TAKEOVER, payload, request_id=request_id)


# Malformed records, shared by every corpus.
MALFORMED = {
    "empty": b"",
    "short_header": header(OP_STATUS, 8)[:20],
    "bad_magic": record(OP_STATUS, struct.pack("<II", 0, 0), magic=0xDEADBEEF),
    "wrong_version": record(OP_STATUS, struct.pack("<II", 0, 0), version=7, request_id=8),
    "version_zero": record(OP_BIND, bind_payload(), version=0, request_id=9),
    "bad_header_size": record(OP_STATUS, struct.pack("<II", 0, 0), header_size=16),
    "payload_past_end": header(OP_STATUS, 1000, request_id=10) + b"\0" * 8,
    "payload_size_huge": header(OP_BIND, 0xFFFFFFFF, request_id=11) + bind_payload(),
    "unknown_opcode": record(999, request_id=41),
    "rejoin_without_fds": rejoin(),
    "takeover_with_payload": takeover(payload=b"\0" * 8),
    "channel_opcode": record(OP_CONNECTION, b"\0" * 40, request_id=12),
    "datagram_opcode": record(OP_DATAGRAM, b"\0" * 64, trailing=b"hello", request_id=13),
    "reply_flag": record(OP_STATUS, struct.pack("<II", 0, 0), flags=FLAG_REPLY, request_id=14),
    "more_flag": record(OP_STATUS, struct.pack("<II", 0, 0), flags=FLAG_MORE, request_id=15),
    "bind_short_payload": record(OP_BIND, b"xx", request_id=16),
    "status_bad_format": record(OP_STATUS, struct.pack("<II", 7, 0), request_id=17),
    "status_with_trailing": record(OP_STATUS, struct.pack("<II", STATUS_JSON, 0), b"tail"),
    "garbage": bytes([0xAB]) * 200,
}

VALID = {
    "status_text": status(STATUS_TEXT),
    "status_json": status(STATUS_JSON),
    "status_prometheus": status(STATUS_PROMETHEUS),
    "bind_tcp4": bind(),
    "bind_udp4": bind(protocol=PROTO_UDP),
    "bind_tcp6": bind(family=AF_INET6, text="::"),
    "listen": listen(),
    "attach": attach(),
}


def write_corpus(name, seeds):
    directory = os.path.join(HERE, "corpus", name)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    for seed, data in sorted(seeds.items()):
        with open(os.path.join(directory, seed), "wb") as f:
            f.write(data)
    print(f"{directory}: {len(seeds)} seeds, {sum(len(d) for d in seeds.values())} bytes")


# wire_fuzzer: byte 0 bit 0 = truncated, then the record.
def wire_seeds():
    seeds = {}
    for name, data in {**VALID, **MALFORMED}.items():
        seeds[name] = b"\0" + data
    seeds["truncated_status"] = b"\1" + status()
    seeds["truncated_wrong_version"] = b"\1" + MALFORMED["wrong_version"]
    seeds["status_trailing_text"] = b"\0" + record(OP_STATUS, struct.pack("<II", 0, 0), b"some trailing text")
    return seeds


# receive_fuzzer: fd count % 17, options, one kind byte per fd, then the record.
PASSCRED, MAX_FDS, OVERSIZE, CLOSE_SENDER, SEND_NOTHING = 1, 2, 4, 8, 16


def receive(data, kinds=(), options=0, count=None):
    n = len(kinds) if count is None else count
    return bytes([n, options]) + bytes(kinds) + data


def receive_seeds():
    seeds = {}
    for name, data in {**VALID, **MALFORMED}.items():
        seeds[name] = receive(data)
    seeds["bind_with_tcp4"] = receive(bind(), [TCP4_LOOPBACK])
    seeds["bind_with_udp4"] = receive(bind(protocol=PROTO_UDP), [UDP4_LOOPBACK])
    seeds["bind_with_pipe"] = receive(bind(), [PIPE_READ])
    seeds["attach_with_unix"] = receive(attach(), [UNIX_STREAM])
    seeds["three_fds"] = receive(status(), [PIPE_WRITE, DEV_NULL, EPOLL])
    seeds["four_fds"] = receive(bind(), [TCP4, UDP4, TCP6, UDP6])
    seeds["sixteen_fds"] = receive(status(), list(range(16)))
    seeds["max_fds"] = receive(status(), options=MAX_FDS)
    seeds["max_fds_with_credentials"] = receive(status(), options=MAX_FDS | PASSCRED)
    seeds["credentials"] = receive(bind(), [TCP4_LISTENING], options=PASSCRED)
    seeds["oversize"] = receive(status(), [DEV_NULL], options=OVERSIZE)
    seeds["oversize_bad_magic"] = receive(MALFORMED["bad_magic"], options=OVERSIZE)
    seeds["empty_then_close"] = receive(b"", options=CLOSE_SENDER)
    seeds["empty_with_fd"] = receive(b"", [DEV_NULL])
    seeds["nothing_sent"] = receive(b"", options=SEND_NOTHING)
    seeds["nothing_sent_closed"] = receive(b"", options=SEND_NOTHING | CLOSE_SENDER)
    seeds["record_then_close"] = receive(listen(), [UDP4_CONNECTED], options=CLOSE_SENDER)
    return seeds


# control_fuzzer: steps (control_input.h).
LINK2, OVERSIZE_STEP, PIPELINE, TRAFFIC, REPEAT = 8, 16, 32, 64, 128


def step(data, kinds=(), flags=0):
    assert len(kinds) <= 7
    return bytes([flags | len(kinds)]) + struct.pack("<H", len(data)) + bytes(kinds) + data


def close_link(flags=0):
    return bytes([flags]) + struct.pack("<H", CLOSE_LINK_LENGTH)


def control_seeds():
    s = {}
    for name, data in {**VALID, **MALFORMED}.items():
        s[name] = step(data)
    s["malformed_then_status"] = step(MALFORMED["wrong_version"]) + step(MALFORMED["unknown_opcode"]) + step(status())
    s["oversize_status"] = step(status(), flags=OVERSIZE_STEP)
    s["oversize_bad_magic"] = step(MALFORMED["bad_magic"], flags=OVERSIZE_STEP)
    # BIND refusals.
    s["bind_no_fd"] = step(bind())
    s["bind_pipe"] = step(bind(), [PIPE_READ])
    s["bind_unix_socket"] = step(bind(), [UNIX_STREAM])
    s["bind_udp_socket_for_tcp"] = step(bind(), [UDP4])
    s["bind_two_fds"] = step(bind(), [TCP4, TCP4])
    s["bind_four_fds"] = step(bind(), [TCP4, DEV_NULL, EPOLL, PIPE_WRITE])
    bad_family = struct.pack("<HHII16s", 99, GROUP_PORT, 0, 0, b"") + struct.pack("<BBHI", PROTO_TCP, 0, 0, 0)
    s["bind_bad_family"] = step(record(OP_BIND, bad_family), [TCP4])
    s["bind_bad_protocol"] = step(bind(protocol=99), [TCP4])
    s["bind_connected_udp"] = step(bind(protocol=PROTO_UDP), [UDP4_CONNECTED])
    s["bind_unbound_port0"] = step(bind(port=0), [TCP4])
    s["bind_unbound_no_group"] = step(bind(), [TCP4])
    s["bind_other_address"] = step(bind(text="127.0.0.2"), [TCP4_LOOPBACK])
    s["bind_privileged_allowed"] = step(bind(port=ALLOWED_PORT), [TCP4]) + step(listen(), flags=TRAFFIC)
    s["bind_privileged_udp_allowed"] = step(bind(port=ALLOWED_PORT, protocol=PROTO_UDP), [UDP4], flags=TRAFFIC)
    s["bind_privileged_denied"] = step(bind(port=80), [TCP4])
    s["listen_before_bind"] = step(listen())
    # Groups and members.
    s["bind_tcp_listen_connect"] = (step(bind(), [TCP4_LOOPBACK]) + step(listen(), flags=TRAFFIC)
                                    + step(status(STATUS_JSON), flags=TRAFFIC))
    s["bind_listening_socket"] = step(bind(port=0), [TCP4_LISTENING]) + step(listen(0)) + step(status())
    s["bind_udp_datagram"] = step(bind(protocol=PROTO_UDP), [UDP4_LOOPBACK], flags=TRAFFIC) + step(
        listen(), flags=TRAFFIC)
    s["bind_udp6"] = step(bind(family=AF_INET6, text="::1", protocol=PROTO_UDP), [UDP6_LOOPBACK], flags=TRAFFIC)
    s["bind_tcp6_dual_stack"] = (step(bind(family=AF_INET6, text="::"), [TCP6_WILDCARD]) + step(listen(), flags=TRAFFIC)
                                 + step(bind(), [TCP4], flags=LINK2) + step(listen(), flags=LINK2 | TRAFFIC))
    s["bind_twice_same_link"] = step(bind(), [TCP4_LOOPBACK]) + step(bind(), [TCP4_LOOPBACK])
    s["join_on_second_link"] = (step(bind(), [TCP4_LOOPBACK]) + step(listen()) + step(bind(), [TCP4], flags=LINK2)
                                + step(listen(), flags=LINK2) + step(status(), flags=TRAFFIC | REPEAT))
    s["join_with_group_socket"] = (step(bind(port=0), [TCP4_LOOPBACK]) + step(bind(port=0), [LATEST_GROUP_SOCKET],
                                                                             flags=LINK2) + step(status(STATUS_JSON)))
    s["wildcard_then_specific"] = (step(bind(text="0.0.0.0"), [TCP4_WILDCARD]) + step(listen())
                                   + step(bind(), [TCP4], flags=LINK2) + step(listen(), flags=LINK2 | TRAFFIC)
                                   + step(status(STATUS_PROMETHEUS)))
    s["attach_on_second_link"] = (step(bind(), [TCP4_LOOPBACK]) + step(listen())
                                  + step(attach(), [LATEST_CHANNEL], flags=LINK2) + close_link()
                                  + step(status(), flags=LINK2 | TRAFFIC))
    s["attach_same_link"] = step(bind(), [TCP4_LOOPBACK]) + step(attach(), [LATEST_CHANNEL])
    s["attach_group_socket"] = step(bind(), [TCP4_LOOPBACK]) + step(attach(), [LATEST_GROUP_SOCKET], flags=LINK2)
    s["attach_stranger"] = step(attach(), [UNIX_STREAM]) + step(attach(), [PIPE_READ]) + step(attach())
    s["listen_on_udp_member"] = step(bind(protocol=PROTO_UDP), [UDP4_LOOPBACK]) + step(listen())
    # A member leaves with connections it never took: they go to the other member.
    s["member_leaves_with_connections"] = (
        step(bind(), [TCP4_LOOPBACK]) + step(listen()) + step(bind(), [TCP4], flags=LINK2)
        + step(listen(), flags=LINK2) + step(status(), flags=TRAFFIC | REPEAT) + close_link()
        + step(status(STATUS_JSON), flags=LINK2 | TRAFFIC))
    s["udp_member_leaves_with_datagrams"] = (
        step(bind(protocol=PROTO_UDP), [UDP4_LOOPBACK]) + step(bind(protocol=PROTO_UDP), [UDP4], flags=LINK2)
        + step(status(), flags=TRAFFIC | REPEAT) + close_link() + step(status(), flags=LINK2 | TRAFFIC))
    # REJOIN: a member presents [channel, channel_peer, group socket].
    s["rejoin_known_member"] = (step(bind(), [TCP4_LOOPBACK]) + step(listen())
                                + step(rejoin(), [LATEST_CHANNEL, LATEST_CHANNEL_PEER, LATEST_GROUP_SOCKET], flags=LINK2)
                                + close_link() + step(status(STATUS_JSON), flags=LINK2 | TRAFFIC))
    s["rejoin_new_channel"] = (step(rejoin(), [NEW_PAIR, NEW_PAIR_OTHER_END, TCP4_LOOPBACK], flags=TRAFFIC)
                               + step(bind(), [TCP4], flags=LINK2) + step(listen(), flags=LINK2 | TRAFFIC)
                               + step(status(STATUS_JSON)))
    s["rejoin_new_channel_udp"] = step(rejoin(protocol=PROTO_UDP, listening=0), [NEW_PAIR, NEW_PAIR_OTHER_END,
                                                                                 UDP4_LOOPBACK], flags=TRAFFIC)
    s["rejoin_under_wildcard"] = step(rejoin(), [NEW_PAIR, NEW_PAIR_OTHER_END, TCP4_WILDCARD], flags=TRAFFIC)
    s["rejoin_not_a_channel"] = step(rejoin(), [DEV_NULL, NEW_PAIR_OTHER_END, TCP4_LOOPBACK])
    s["rejoin_unbound_socket"] = step(rejoin(), [NEW_PAIR, NEW_PAIR_OTHER_END, TCP4])
    s["rejoin_wrong_port"] = step(rejoin(port=1234), [NEW_PAIR, NEW_PAIR_OTHER_END, TCP4_LOOPBACK])
    # Regression (found by this fuzzer): a family that is neither AF_INET nor
    # AF_INET6 must be refused, as BIND refuses it.
    s["rejoin_unknown_family"] = step(rejoin(protocol=PROTO_UDP, listening=0, family_field=32),
                                      [NEW_PAIR, NEW_PAIR_OTHER_END, UDP4_LOOPBACK])
    s["rejoin_twice"] = (step(rejoin(), [NEW_PAIR, NEW_PAIR_OTHER_END, TCP4_LOOPBACK])
                         + step(rejoin(), [NEW_PAIR, NEW_PAIR_OTHER_END, TCP4_LOOPBACK], flags=LINK2))
    # TAKEOVER: the broker answers and stops; the fuzzer starts another.
    s["takeover"] = step(takeover())
    s["takeover_with_fd"] = step(takeover(), [DEV_NULL])
    s["takeover_with_members"] = (step(bind(), [TCP4_LOOPBACK]) + step(listen(), flags=TRAFFIC)
                                  + step(bind(protocol=PROTO_UDP), [UDP4_LOOPBACK], flags=LINK2 | TRAFFIC)
                                  + step(takeover(), flags=LINK2) + step(status()))
    s["takeover_pipelined"] = step(status(), flags=LINK2 | PIPELINE) + step(status(), flags=PIPELINE) + step(
        takeover(), flags=PIPELINE)
    # Pipelining: a client that does not read its replies.
    s["pipelined_status"] = step(status(), flags=PIPELINE | REPEAT) * 3 + step(status())
    # Enough unread replies to fill the link: the BIND's reply (with fds) cannot
    # be sent, and the broker closes the link and drops the group it made.
    s["pipelined_then_bind"] = step(status(), flags=PIPELINE | REPEAT) * 7 + step(bind(), [TCP4_LOOPBACK],
                                                                                    flags=PIPELINE)
    return s


def main():
    write_corpus("wire_fuzzer", wire_seeds())
    write_corpus("receive_fuzzer", receive_seeds())
    write_corpus("control_fuzzer", control_seeds())


if __name__ == "__main__":
    main()
