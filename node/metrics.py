"""Prometheus metrics of one agent, in a registry of its own (so tests can run several agents in
one process without their counters colliding)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class _LiveCollector(Collector):
    """Gauges read at scrape time from the agent's state, so they are never stale."""

    def __init__(
        self,
        members_by_status: Callable[[], Mapping[str, int]],
        servos_by_state: Callable[[], Mapping[str, int]],
        gossip_counters: Callable[[], Mapping[str, Mapping[str, int]]],
    ) -> None:
        self._members = members_by_status
        self._servos = servos_by_state
        self._gossip = gossip_counters

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        members = GaugeMetricFamily("shoal_members", "Cluster members by status", labels=["status"])
        counts = dict(self._members())
        for status in ("alive", "suspect", "dead", "left"):
            members.add_metric([status], counts.get(status, 0))
        yield members
        servos = GaugeMetricFamily("shoal_servos", "Servos on this host by state", labels=["state"])
        scounts = dict(self._servos())
        for state in ("starting", "running", "restarting", "stopped", "failed"):
            servos.add_metric([state], scounts.get(state, 0))
        yield servos
        g = self._gossip()
        for name, help_text in (
            ("packets_in", "Gossip packets received"),
            ("packets_out", "Gossip packets sent"),
            ("bytes_in", "Gossip bytes received"),
            ("bytes_out", "Gossip bytes sent"),
        ):
            fam = CounterMetricFamily(f"shoal_gossip_{name}", help_text)
            fam.add_metric([], int(g.get("totals", {}).get(name, 0)))
            yield fam
        dropped = CounterMetricFamily(
            "shoal_gossip_packets_dropped", "Gossip packets dropped, by reason", labels=["reason"]
        )
        for reason, n in sorted(g.get("dropped", {}).items()):
            dropped.add_metric([reason], int(n))
        yield dropped
        inv = g.get("inventory", {})
        pulls = CounterMetricFamily(
            "shoal_inventory_pulls",
            "Whole servo inventories pulled from hosts whose copy here fell behind (a lost delta)",
        )
        pulls.add_metric([], int(inv.get("pulls", 0)))
        yield pulls
        bad = CounterMetricFamily(
            "shoal_inventory_dropped",
            "Application-channel payloads dropped as malformed, by kind",
            labels=["kind"],
        )
        for key, n in sorted(inv.items()):
            if key.startswith("dropped."):
                bad.add_metric([key.removeprefix("dropped.")], int(n))
        yield bad


class _StorageCollector(Collector):
    """Whether each durable store writes right now (its writer thread retries failures)."""

    def __init__(self, errors: Callable[[], Mapping[str, str | None]]) -> None:
        self._errors = errors

    def collect(self) -> Iterable[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "shoal_storage_healthy",
            "1 when the store's durable writes succeed, 0 while they fail (retried)",
            labels=["store"],
        )
        for store, error in sorted(self._errors().items()):
            fam.add_metric([store], 0 if error else 1)
        yield fam


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deploys = Counter(
            "shoal_deploys",
            "Deploy requests handled, by result",
            ["result"],
            registry=self.registry,
        )
        self.placement_retries = Counter(
            "shoal_placement_retries",
            "Servo creations retried on another host, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.recovery_actions = Counter(
            "shoal_recovery_actions",
            "Servos re-created or removed by recovery, by action",
            ["action"],
            registry=self.registry,
        )
        self.servo_exits = Counter(
            "shoal_servo_exits",
            "Servo exits seen on this host (each restarted in place or failed), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.servo_failures = Counter(
            "shoal_servo_failures",
            "Servos this host marked failed, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.internal_refused = Counter(
            "shoal_internal_refused",
            "Agent-to-agent requests refused (not sealed for this agent, stale, replayed)",
            ["reason"],
            registry=self.registry,
        )
        self.storage_errors = Counter(
            "shoal_storage_errors",
            "Failed durable writes (each retried with backoff), by store",
            ["store"],
            registry=self.registry,
        )
        self.create_seconds = Histogram(
            "shoal_servo_create_seconds",
            "Time from asking a host to create a servo until it answered",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )

    def attach_storage(self, errors: Callable[[], Mapping[str, str | None]]) -> None:
        self.registry.register(_StorageCollector(errors))

    def count_internal_refused(self, reason: str) -> None:
        self.internal_refused.labels(reason).inc()

    def attach_live(
        self,
        members_by_status: Callable[[], Mapping[str, int]],
        servos_by_state: Callable[[], Mapping[str, int]],
        gossip_counters: Callable[[], Mapping[str, Mapping[str, int]]],
    ) -> None:
        self.registry.register(_LiveCollector(members_by_status, servos_by_state, gossip_counters))

    def render(self) -> bytes:
        return generate_latest(self.registry)
