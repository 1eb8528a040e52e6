"""Hypothesis strategies for cluster views and requests."""

from __future__ import annotations

from hypothesis import strategies as st

from placement.model import ClusterView, NodeView, PlacementRequest, ServoRef

PROJECTS = ["web", "api", "db"]


@st.composite
def node_views(draw: st.DrawFn, name: str) -> NodeView:
    mem_total = draw(st.integers(0, 4096))
    cpu_total = draw(st.integers(0, 4000))
    servos = draw(st.lists(st.sampled_from(PROJECTS), max_size=3))
    return NodeView(
        name=name,
        region=draw(st.sampled_from(["eu", "us", "ap"])),
        zone=draw(st.sampled_from(["a", "b"])),
        status=draw(st.sampled_from(["alive", "alive", "alive", "suspect", "dead", "left"])),
        memory_total_mb=mem_total,
        memory_free_mb=draw(st.integers(0, mem_total)),
        millicpus_total=cpu_total,
        millicpus_free=draw(st.integers(0, cpu_total)),
        servos=tuple(ServoRef(p, f"{name}-{p}-{i}") for i, p in enumerate(servos)),
    )


@st.composite
def views(draw: st.DrawFn, max_nodes: int = 12) -> ClusterView:
    n = draw(st.integers(0, max_nodes))
    return ClusterView(tuple(draw(node_views(f"n{i:02d}")) for i in range(n)))


@st.composite
def requests(draw: st.DrawFn) -> PlacementRequest:
    return PlacementRequest(
        project=draw(st.sampled_from(PROJECTS)),
        count=draw(st.integers(0, 6)),
        memory_mb=draw(st.integers(0, 1024)),
        millicpus=draw(st.integers(0, 1000)),
        spread=draw(st.sampled_from(["region", "zone", "host"])),
        max_per_host=draw(st.sampled_from([1, 1, 2])),
        strategy=draw(st.sampled_from(["spread", "binpack"])),
    )
