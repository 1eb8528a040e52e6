"""One private network namespace whose loopback loses a random share of every packet.

Why this shape: `tc netem` does not work on this kernel's loopback inside a namespace, but
iptables' `statistic --mode random` match does; a packet on loopback passes INPUT exactly once,
so one DROP rule there loses that fraction of every UDP and TCP packet between the agents. Many
agents share the namespace, each on its own loopback port, so the loss is the same for all of
them and for anything else (Serf) run beside them.

The caller's own HTTP/RPC ports can be exempted (an ACCEPT before the DROP, both directions):
a poller that measures detection time must not add TCP retransmit delays (200 ms and up) of its
own to what it measures. Gossip ports are never exempted.

`inside(ns)` runs the calling *thread* in the namespace (Linux `setns` on a network namespace
applies to the calling thread only), so a test or benchmark in the root namespace can open
sockets to agents on the namespace's loopback without a process per request.

Used by tests/integration/test_gossip_loss_netns.py and bench/gossip_loss.py.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import attrs

CLONE_NEWNET = 0x40000000
IPTABLES_CANDIDATES = ("iptables", "iptables-legacy", "iptables-nft")


class NamespaceError(RuntimeError):
    """The namespace or its drop rule could not be set up (no root, no ip/iptables)."""


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NamespaceError(f"{' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def missing_tools() -> list[str]:
    """What this module needs and the machine lacks (empty when all is there)."""
    missing = [] if shutil.which("ip") else ["ip (apt-get install iproute2)"]
    if not any(shutil.which(c) for c in IPTABLES_CANDIDATES):
        missing.append("iptables (apt-get install iptables)")
    if os.geteuid() != 0:
        missing.append("root (ip netns add needs CAP_SYS_ADMIN)")
    return missing


@contextmanager
def inside(ns: str) -> Iterator[None]:
    """Run the calling thread in network namespace `ns` for the block, then return it home.

    Sockets keep the namespace they were made in, so open and use them inside the block.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        there = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(there, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns into {ns}: {os.strerror(err)}")
            try:
                yield
            finally:
                # failing to come home would leave this thread's later sockets in the wrong place
                assert libc.setns(home, CLONE_NEWNET) == 0, "setns back to the home namespace"
        finally:
            os.close(there)
    finally:
        os.close(home)


@attrs.define
class LossyNamespace:
    """A namespace with loopback up and a random-drop rule on INPUT that can be changed."""

    name: str
    iptables: str
    exempt_tcp_ports: list[int] = attrs.field(factory=list)
    drop: float = 0.0

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def ipt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(*self.exec_prefix(), self.iptables, *args, check=check)

    def set_drop(self, drop: float) -> None:
        """Replace the rules: exempted ports first, then the random DROP (none at 0)."""
        assert 0.0 <= drop < 1.0, drop
        self.ipt("-F", "INPUT")
        for port in self.exempt_tcp_ports:
            for side in ("--dport", "--sport"):
                self.ipt("-A", "INPUT", "-p", "tcp", side, str(port), "-j", "ACCEPT")
        if drop > 0:
            self.ipt(
                "-A", "INPUT", "-m", "statistic", "--mode", "random",
                "--probability", f"{drop:.4f}", "-j", "DROP",
            )  # fmt: skip
        self.drop = drop

    def exempt(self, ports: Sequence[int]) -> None:
        """Keep these TCP ports (a measuring client's API/RPC ports) out of the loss."""
        self.exempt_tcp_ports.extend(ports)
        self.set_drop(self.drop)

    def dropped_packets(self) -> int:
        """Packets the DROP rule has taken so far (proof that loss really happened)."""
        out = self.ipt("-L", "INPUT", "-v", "-n", "-x").stdout
        return sum(int(line.split()[0]) for line in out.splitlines() if " DROP " in line)


def _working_iptables(ns: str) -> str:
    """The first iptables variant that can add a statistic rule inside `ns` (legacy or nft)."""
    errors = []
    for cand in IPTABLES_CANDIDATES:
        if not shutil.which(cand):
            continue
        probe = ["ip", "netns", "exec", ns, cand]
        rule = ["-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "DROP"]
        added = _run(*probe, "-A", "INPUT", *rule, check=False)
        if added.returncode == 0:
            _run(*probe, "-D", "INPUT", *rule, check=False)
            return cand
        errors.append(f"{cand}: {added.stderr.strip()}")
    raise NamespaceError("no iptables variant works inside a netns: " + "; ".join(errors))


@contextmanager
def lossy_namespace(name: str, drop: float = 0.0) -> Iterator[LossyNamespace]:
    """Create namespace `name` (unique per run: the caller puts its run id in it), loopback up,
    `drop` of every packet lost; deleted on exit even after a failure. Processes the caller
    started in it are the caller's to kill first."""
    missing = missing_tools()
    if missing:
        raise NamespaceError("missing: " + ", ".join(missing))
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        ns = LossyNamespace(name, _working_iptables(name))
        ns.set_drop(drop)
        yield ns
    finally:
        _run("ip", "netns", "del", name, check=False)
