"""Which address this agent tells its peers, when it listens on every address (`--bind 0.0.0.0`).

A wildcard is where to listen, never where to be reached: gossiping `0.0.0.0:7946` (or an API at
`http://0.0.0.0:7070`) sends every peer to itself. So, unless `--advertise` says otherwise:

1. the source address the kernel would use to reach the first seed (a UDP `connect` sends no
   packet; it only asks the routing table), which is the right one on a host with several
   interfaces (LAN, Docker bridge, VPN);
2. without seeds (the first agent), the source address of the default route, the "primary
   interface";
3. without a default route (an isolated network, a namespace with one subnet), the first
   non-loopback IPv4 address of an interface that is up;
4. loopback, as the last resort: a cluster on one machine still works.
"""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct
from collections.abc import Sequence

WILDCARDS = frozenset({"", "0.0.0.0", "::"})
# any routable address: connect() on UDP only consults the routing table (TEST-NET-1, RFC 5737)
DEFAULT_ROUTE_PROBE = ("192.0.2.1", 9)
_SIOCGIFADDR = 0x8915
_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1


def is_wildcard(addr: str) -> bool:
    return addr.strip() in WILDCARDS


def is_loopback(addr: str) -> bool:
    if addr.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr.strip()).is_loopback
    except ValueError:
        return False


def source_addr_towards(host: str, port: int) -> str | None:
    """The local address the kernel picks to reach (host, port); None when there is no route."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return None
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as s:
                s.connect(sockaddr)
                addr = str(s.getsockname()[0])
        except OSError:
            continue
        if not is_wildcard(addr):
            return addr
    return None


def interface_addrs() -> list[str]:
    """IPv4 addresses of the interfaces that are up, in interface order (Linux ioctls)."""
    found: list[str] = []
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return found
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            req = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack("H", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req)[16:18])[0]
                if not flags & _IFF_UP:
                    continue
                raw = array.array("B", fcntl.ioctl(s.fileno(), _SIOCGIFADDR, req)[20:24])
            except OSError:  # no IPv4 address on this interface
                continue
            found.append(socket.inet_ntoa(raw.tobytes()))
    return found


def choose_advertise(bind: str, seeds: Sequence[tuple[str, int]] = ()) -> str:
    """The address peers should use for this agent (see the module docstring for the order)."""
    if not is_wildcard(bind):
        return bind
    for host, port in seeds[:1]:
        addr = source_addr_towards(host, port)
        if addr:
            return addr
    addr = source_addr_towards(*DEFAULT_ROUTE_PROBE)
    if addr:
        return addr
    for addr in interface_addrs():
        if not is_loopback(addr):
            return addr
    return "127.0.0.1"
