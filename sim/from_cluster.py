"""`shoal sim SCENARIO --from-cluster URL`: the simulated fleet is the operator's own.

One agent's public API gives the whole picture: `GET /v1/members` (every agent's region, zone,
status and capacity) and `GET /v1/projects` (every project's spec). They become a
`sim.layout.FleetLayout`: the same hosts, the same projects with the same replicas, sizes and
spread, and the region (and zone) the outage scenarios take down.

What is left out, and said so in the report: agents already dead, gone or draining (they take
no servos), and agents reporting no capacity. Servos are placed by the engine as a fresh deploy
of these specs would place them, not copied from where they run now: on a cluster that has been
through failures the live placement may differ, and the result is the engine's answer for this
fleet and these projects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from node.units import UnitError, parse_memory_mb, parse_millicpus
from placement.converge import Desired
from sim.layout import FleetLayout, HostSpec, largest_region

TAKES_SERVOS = frozenset({"alive", "suspect", "restarting"})
TIMEOUT_S = 30.0
SPREADS = frozenset({"region", "zone", "host"})


class FromClusterError(Exception):
    """The cluster could not be read, or does not make a fleet to simulate; one line."""


def fetch(url: str, token: str | None = None) -> tuple[list[Any], list[Any]]:
    """Members and projects as the agent at `url` sees them."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = url.rstrip("/")
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=TIMEOUT_S) as http:
            members = _get(http, "/v1/members")
            projects = _get(http, "/v1/projects")
    except httpx.HTTPError as exc:
        raise FromClusterError(f"cannot read the cluster at {base}: {exc}") from None
    if not isinstance(members, list) or not isinstance(projects, list):
        raise FromClusterError(f"{base} does not answer like a Shoal agent")
    return members, projects


def _get(http: httpx.Client, path: str) -> Any:
    resp = http.get(path)
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        raise FromClusterError(f"GET {path}: {resp.status_code} {detail}")
    return resp.json()


def hosts_from(members: Sequence[Any]) -> tuple[list[HostSpec], list[str]]:
    hosts: list[HostSpec] = []
    notes: list[str] = []
    for m in sorted(members, key=lambda m: str(m.get("name", ""))):
        name, status = str(m.get("name", "")), str(m.get("status", ""))
        if status not in TAKES_SERVOS:
            notes.append(f"{name} left out: it is {status}")
            continue
        cap = m.get("capacity") or {}
        memory, millicpus = int(cap.get("memory_total_mb", 0)), int(cap.get("millicpus_total", 0))
        if memory <= 0 or millicpus <= 0:
            notes.append(f"{name} left out: it reports no capacity")
            continue
        region = str(m.get("region") or "default")
        hosts.append(HostSpec(name, region, str(m.get("zone") or f"{region}-1"), memory, millicpus))
    return hosts, notes


def specs_from(projects: Sequence[Any]) -> tuple[list[Desired], list[str]]:
    specs: list[Desired] = []
    notes: list[str] = []
    for p in sorted(projects, key=lambda p: str(p.get("name", ""))):
        name, spec = str(p.get("name", "")), p.get("spec") or {}
        try:
            desired = Desired(
                name,
                int(spec["replicas"]),
                parse_memory_mb(spec["memory"]),
                parse_millicpus(spec["cpus"]),
                spread=str(spec.get("spread", "region")),
                stopped=bool(spec.get("stopped", False)),
                generation=int(p.get("generation", 1)),
            )
        except (KeyError, TypeError, ValueError, UnitError) as exc:
            notes.append(f"project {name} left out: its spec does not read ({exc})")
            continue
        if desired.spread not in SPREADS:
            notes.append(f"project {name} left out: unknown spread {desired.spread!r}")
            continue
        specs.append(desired)
    return specs, notes


def layout_from(
    members: Sequence[Any],
    projects: Sequence[Any],
    region: str | None = None,
    zone: str | None = None,
    source: str = "",
) -> FleetLayout:
    hosts, host_notes = hosts_from(members)
    specs, spec_notes = specs_from(projects)
    if len(hosts) < 2:
        raise FromClusterError(
            f"the cluster has {len(hosts)} agent(s) able to take servos: nothing to simulate"
        )
    regions = sorted({h.region for h in hosts})
    target_region = region or largest_region(hosts)
    if target_region not in regions:
        raise FromClusterError(f"no region {target_region!r}; the fleet has {', '.join(regions)}")
    zones = sorted({h.zone for h in hosts if h.region == target_region})
    all_zones = sorted({h.zone for h in hosts})
    target_zone = zone or zones[0]
    if target_zone not in all_zones:
        raise FromClusterError(f"no zone {target_zone!r}; the fleet has {', '.join(all_zones)}")
    return FleetLayout(
        tuple(hosts),
        tuple(specs),
        target_region,
        target_zone,
        source=source,
        notes=tuple(host_notes + spec_notes),
    )


def fetch_layout(
    url: str, token: str | None = None, region: str | None = None, zone: str | None = None
) -> FleetLayout:
    members, projects = fetch(url, token)
    return layout_from(members, projects, region, zone, source=url)
