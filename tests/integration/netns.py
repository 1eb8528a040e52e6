"""Network namespaces as separate hosts: each gets its own address on a private bridge, so a
test can cut one off (partition) and heal it, or lose it whole. Everything is named with the run
id and removed on exit, even after a failure."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

from tests.conftest import RUN_ID


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def netns_available() -> bool:
    probe = f"shp{RUN_ID[-6:]}"
    ok = sh("ip", "netns", "add", probe, check=False).returncode == 0
    if ok:
        sh("ip", "netns", "del", probe, check=False)
    return ok


@attrs.define
class Host:
    ns: str
    veth: str
    addr: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]

    def cut(self) -> None:
        """Partition: the host keeps running but no packet reaches or leaves it."""
        sh("ip", "link", "set", self.veth, "down")

    def heal(self) -> None:
        sh("ip", "link", "set", self.veth, "up")


@contextmanager
def hosts(count: int, subnet: str = "10.231.77") -> Iterator[list[Host]]:
    tag = RUN_ID[-6:]
    bridge = f"shb{tag}"
    made: list[Host] = []
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{subnet}.1/24", "dev", bridge)
        sh("ip", "link", "set", bridge, "up")
        # Docker sets the FORWARD policy to DROP; let traffic between our hosts through.
        sh("iptables", "-I", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT", check=False)
        for i in range(count):
            ns, veth, peer = f"sh{tag}n{i}", f"shv{tag}{i}", f"shp{tag}{i}"
            addr = f"{subnet}.{i + 10}"
            sh("ip", "netns", "add", ns)
            made.append(Host(ns, veth, addr))
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
            sh("ip", "link", "set", peer, "netns", ns)
            sh("ip", "link", "set", veth, "master", bridge)
            sh("ip", "link", "set", veth, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{addr}/24", "dev", peer)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", peer, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield made
    finally:
        for h in made:
            sh("ip", "netns", "del", h.ns, check=False)
            sh("ip", "link", "del", h.veth, check=False)
        sh("iptables", "-D", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT", check=False)
        sh("ip", "link", "del", bridge, check=False)
