"""Local TCP ports: is something listening, and which one is free. One home for the probes the embedded servers
(FiftyOne's database, Label Studio, the FiftyOne App) and the distributed trainer's rendezvous all need."""

from __future__ import annotations

import socket

__all__ = ["free_port", "port_open"]


def port_open(port: int, address: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether something accepts connections on ``address:port`` (bounded: a firewalled address does not hang)."""
    with socket.socket() as s:
        s.settimeout(timeout)
        return s.connect_ex((address, port)) == 0


def free_port(address: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; another process may still take it before we do)."""
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]
