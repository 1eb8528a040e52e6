"""Properties of `place` that must hold for every view and request (hypothesis)."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from placement import ClusterView, PlacementRequest, Refusal, place
from placement.model import NodeView
from tests.unit.placement.strategies import requests, views


def project_counts(request: PlacementRequest, view: ClusterView) -> Counter[str]:
    return Counter(n.name for n in view.nodes for ref in n.servos if ref.project == request.project)


@given(views(), requests())
def test_capacity_is_never_exceeded(view: ClusterView, request: PlacementRequest) -> None:
    d = place(request, view)
    per_node = Counter(d.placements)
    for node in view.nodes:
        k = per_node[node.name]
        assert k * request.memory_mb <= node.memory_free_mb
        assert k * request.millicpus <= node.millicpus_free


@given(views(), requests())
def test_anti_affinity_and_liveness_hold(view: ClusterView, request: PlacementRequest) -> None:
    d = place(request, view)
    total = project_counts(request, view) + Counter(d.placements)
    by_name = view.by_name()
    for name in d.placements:
        assert by_name[name].status == "alive"
        assert total[name] <= request.max_per_host


@given(views(), requests(), st.randoms(use_true_random=False))
def test_same_answer_under_any_permutation(
    view: ClusterView, request: PlacementRequest, rnd: random.Random
) -> None:
    nodes = list(view.nodes)
    rnd.shuffle(nodes)
    assert place(request, view) == place(request, ClusterView(tuple(nodes)))


@given(views(), requests())
def test_every_refusal_is_true_of_its_node(view: ClusterView, request: PlacementRequest) -> None:
    d = place(request, view)
    assert len(d.placements) + d.missing == request.count
    if d.missing == 0:
        return
    by_name = view.by_name()
    counts = project_counts(request, view) + Counter(d.placements)
    used = Counter(d.placements)
    for name, reason in d.refusals:
        node = by_name[name]
        if reason == Refusal.NOT_ALIVE:
            assert node.status != "alive"
        elif reason == Refusal.ALREADY_RUNS_PROJECT:
            assert counts[name] >= request.max_per_host
        elif reason == Refusal.INSUFFICIENT_MEMORY:
            assert node.memory_free_mb - used[name] * request.memory_mb < request.memory_mb
        elif reason == Refusal.INSUFFICIENT_CPU:
            assert node.millicpus_free - used[name] * request.millicpus < request.millicpus
        else:
            raise AssertionError(f"unexpected reason {reason}")
    # every node is either used or explained
    assert {n for n, _ in d.refusals} | set(d.placements) == set(by_name)


@st.composite
def roomy_views(draw: st.DrawFn) -> ClusterView:
    regions = draw(st.integers(1, 4))
    per_region = draw(st.integers(1, 4))
    nodes = []
    for r in range(regions):
        for i in range(per_region):
            nodes.append(NodeView(f"r{r}n{i}", f"r{r}", "a", "alive", 4096, 4096, 4000, 4000))
    return ClusterView(tuple(nodes))


@settings(max_examples=200)
@given(roomy_views(), st.integers(0, 16))
def test_region_skew_at_most_one_when_capacity_allows(view: ClusterView, count: int) -> None:
    hosts = len(view.nodes)
    request = PlacementRequest("web", min(count, hosts), 256, 100)
    d = place(request, view)
    assert d.missing == 0
    regions = Counter(view.by_name()[n].region for n in d.placements)
    all_regions = {n.region for n in view.nodes}
    counts = [regions.get(r, 0) for r in all_regions]
    assert max(counts) - min(counts) <= 1
