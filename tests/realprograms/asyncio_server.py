"""A server on asyncio with reuse_port=True, as Python programs write them.

  asyncio_server.py tcp PORT ID          HTTP/1.0: 200 "<ID>"
  asyncio_server.py udp PORT ID READY    echo: "<ID> <datagram>"; READY written once bound
"""
import asyncio
import os
import sys


async def tcp(port, ident):
    async def handle(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = f"{ident}\n".encode()
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", port, reuse_port=True)
    async with server:
        await server.serve_forever()


class Echo(asyncio.DatagramProtocol):
    def __init__(self, ident):
        self.ident = ident.encode()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(self.ident + b" " + data, addr)


async def udp(port, ident, ready):
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Echo(ident), local_addr=("127.0.0.1", port), reuse_port=True)
    with open(ready + ".tmp", "w") as f:
        f.write(f"{port}\n")
    os.rename(ready + ".tmp", ready)
    await asyncio.Event().wait()


if __name__ == "__main__":
    kind, port, ident = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    asyncio.run(tcp(port, ident) if kind == "tcp" else udp(port, ident, sys.argv[4]))
