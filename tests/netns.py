"""Network namespaces that stand in for hosts, for system tests (needs root and ``ip``).

``Hosts(count)`` builds ``cimh-<tag>-1`` ... ``cimh-<tag>-<count>``, each with ``lo`` up and an
``eth0`` of a test subnet (``10.251.<random>.0/24``, host ``i`` at ``.i``) that exists only
inside them: each ``eth0`` is a veth whose other end is a port of the bridge ``br0`` in a
namespace of its own (``cimh-<tag>-br``). Nothing is done in the root namespace. ``destroy``
deletes every one of them (the veths and the bridge go with them); ``with Hosts(n) as hosts``
does it whatever happens, but a namespace stays as long as a process runs in it, so whoever
started processes in them kills those first.

A process runs on host ``i`` as ``ip netns exec NAME ...`` (``command(i, args)``); code of the
test process runs there with ``call(i, fn)``: in a thread of its own that entered the
namespace (``setns``), so the sockets it opens belong to that host.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Self, TypeVar

__all__ = ["Hosts"]

T = TypeVar("T")

SUBNET = "10.251"
NETNS_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000
_IP_TIMEOUT_S = 10.0


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _entered(name: str, fn: Callable[[], T]) -> T:
    """``fn()`` in network namespace ``name``; only the calling thread moves there."""
    fd = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({name}): {os.strerror(errno)}")
    finally:
        os.close(fd)
    return fn()


class Hosts:
    """``count`` network namespaces on one bridge (see the module's docstring)."""

    def __init__(self, count: int) -> None:
        prefix = f"cimh-{secrets.token_hex(3)}"
        self.names = [f"{prefix}-{i + 1}" for i in range(count)]
        self.bridge = f"{prefix}-br"
        net = f"{SUBNET}.{1 + secrets.randbelow(254)}"
        self.addresses = [f"{net}.{i + 1}" for i in range(count)]

    def __enter__(self) -> Self:
        self.create()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    def create(self) -> None:
        """Build the namespaces, the bridge and the links (half-built ones are deleted)."""
        try:
            _ip("netns", "add", self.bridge)
            _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.bridge, "link", "set", "br0", "up")
            for i, (name, address) in enumerate(zip(self.names, self.addresses, strict=True)):
                port = f"v{i + 1}"
                _ip("netns", "add", name)
                _ip("-n", name, "link", "set", "lo", "up")
                veth = ("type", "veth", "peer", "name", "eth0", "netns", name)
                _ip("-n", self.bridge, "link", "add", port, *veth)
                _ip("-n", self.bridge, "link", "set", port, "master", "br0", "up")
                _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
                _ip("-n", name, "link", "set", "eth0", "up")
        except BaseException:
            self.destroy()
            raise

    def destroy(self) -> None:
        """Delete every namespace of these hosts that exists (and so their links)."""
        for name in [*self.names, self.bridge]:
            if os.path.exists(os.path.join(NETNS_DIR, name)):
                subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=_IP_TIMEOUT_S)

    def command(self, i: int, args: list[str]) -> list[str]:
        """``args`` run on host ``i`` (0-based): ``ip netns exec`` execs them, so the pid of
        the process started is the program's own."""
        return ["ip", "netns", "exec", self.names[i], *args]

    def call(self, i: int, fn: Callable[[], T]) -> T:
        """``fn()`` on host ``i``, in a thread that ends afterwards (blocking)."""
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(_entered, self.names[i], fn).result()
