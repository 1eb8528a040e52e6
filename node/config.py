"""The agent's configuration: every flag of `shoal agent`, with the defaults a LAN fleet wants."""

from __future__ import annotations

import socket
from pathlib import Path

import attrs

from node.netaddr import is_wildcard

# `shoal agent` listens for gossip on every address and serves the public API on loopback only
# (as Consul's `bind_addr`/`client_addr`): peers on the LAN reach it, the API stays private.
# This class's own default stays loopback, for agents embedded in tests and tools.
DEFAULT_CLI_BIND = "0.0.0.0"
DEFAULT_GOSSIP_PORT = 7946
DEFAULT_API_PORT = 7070
DEFAULT_INGRESS_DOMAIN = "shoal.localhost"


@attrs.frozen
class AgentConfig:
    name: str = attrs.field(factory=socket.gethostname)
    region: str = "default"
    zone: str = ""
    bind: str = "127.0.0.1"  # gossip listens here (UDP and TCP)
    advertise: str = ""  # what peers are told; "" = --bind, or chosen at start for a wildcard
    # where the public API listens; "" = --bind, or loopback when --bind is a wildcard
    api_bind: str = ""
    gossip_port: int = DEFAULT_GOSSIP_PORT
    api_port: int = DEFAULT_API_PORT
    data_dir: Path = Path("./shoal-data")
    runtime: str = "fake"
    memory_mb: int | None = None
    millicpus: int | None = None
    join: tuple[str, ...] = ()
    cluster_key_file: Path | None = None
    join_token: str = ""  # `shoal join-token`'s line: seeds and key ring (node.join_token)
    api_token: str | None = None  # full access (reads and writes) when set
    api_read_token: str | None = None  # reads only; meaningless without api_token
    # Host header names the API answers to besides its own addresses and localhost (DNS
    # rebinding: a page on evil.example resolving to us must not reach the API); "*" allows any
    api_allowed_hosts: tuple[str, ...] = ()
    log_level: str = "info"
    drain: bool = False
    leave_on_stop: bool = False
    restart_grace_s: float = 60.0
    volume_retention_s: float = 7 * 24 * 3600.0
    ingress_port: int | None = None  # None: this agent runs no ingress proxy
    ingress_domain: str = DEFAULT_INGRESS_DOMAIN  # projects answer at <project>.<domain>

    @property
    def zone_or_default(self) -> str:
        return self.zone or f"{self.region}-1"

    @property
    def advertise_addr(self) -> str:
        return self.advertise or self.bind

    @property
    def api_bind_addr(self) -> str:
        if self.api_bind:
            return self.api_bind
        return "127.0.0.1" if is_wildcard(self.bind) else self.bind

    @property
    def internal_bind_addr(self) -> str | None:
        """Where the agent-to-agent routes must listen as well, so that peers reach them at the
        advertised API URL: the advertised address, when the public API's bind does not already
        cover it (API on loopback, gossip on the LAN). None when it does."""
        api = self.api_bind_addr
        if is_wildcard(api) or api == self.advertise_addr or is_wildcard(self.advertise_addr):
            return None
        return self.advertise_addr
