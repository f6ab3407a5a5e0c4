"""The service's listening sockets, bound before anything else starts.

`orchestrator serve` binds its port first and only then starts the app (the call store marks the records of
calls cut off by a crash as interrupted, the demo orders are seeded, clients open). A port in use therefore
stops a second `serve` before it touches anything the first one owns: it used to mark the first service's
live calls as interrupted in their shared call store, then fail to bind. Imports only the standard library.
"""

from __future__ import annotations

import socket

__all__ = ["bind_listening"]


def bind_listening(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """One bound socket per address `host` resolves to (every interface when empty), as asyncio binds them.

    Raises OSError with the reason in lower case ("address already in use"), every socket bound so far
    closed.
    """
    infos = socket.getaddrinfo(
        host or None, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:  # serve --workers: every worker listens on the same port
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:  # one socket per family, as asyncio does
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:  # "address already in use", as the CLI's one line says it
                raise OSError(exc.errno, (exc.strerror or str(exc)).lower()) from None
            sock.listen(128)
            sock.setblocking(False)
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    return bound
