"""The agent's configuration: every flag of `shoal agent`, with the defaults a LAN fleet wants."""

from __future__ import annotations

import socket
from pathlib import Path

import attrs

DEFAULT_GOSSIP_PORT = 7946
DEFAULT_API_PORT = 7070
DEFAULT_INGRESS_DOMAIN = "shoal.localhost"


@attrs.frozen
class AgentConfig:
    name: str = attrs.field(factory=socket.gethostname)
    region: str = "default"
    zone: str = ""
    bind: str = "127.0.0.1"
    advertise: str = ""
    gossip_port: int = DEFAULT_GOSSIP_PORT
    api_port: int = DEFAULT_API_PORT
    data_dir: Path = Path("./shoal-data")
    runtime: str = "fake"
    memory_mb: int | None = None
    millicpus: int | None = None
    join: tuple[str, ...] = ()
    cluster_key_file: Path | None = None
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
