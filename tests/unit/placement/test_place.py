"""Examples of placement behaviour, each a sentence of the issue."""

from __future__ import annotations

from placement import ClusterView, NodeView, PlacementRequest, ServoRef, headroom, place, rebalance


def node(
    name: str,
    region: str = "eu",
    zone: str = "a",
    status: str = "alive",
    mem: int = 1024,
    cpu: int = 1000,
    free_mem: int | None = None,
    free_cpu: int | None = None,
    servos: tuple[ServoRef, ...] = (),
) -> NodeView:
    return NodeView(
        name,
        region,
        zone,
        status,
        mem,
        mem if free_mem is None else free_mem,
        cpu,
        cpu if free_cpu is None else free_cpu,
        servos,
    )


def test_spreads_across_regions_then_zones() -> None:
    view = ClusterView(
        tuple(node(f"{r}{z}{i}", r, z) for r in ("eu", "us") for z in ("a", "b") for i in range(2))
    )
    d = place(PlacementRequest("web", 4, 100, 100), view)
    by = view.by_name()
    assert sorted((by[n].region, by[n].zone) for n in d.placements) == [
        ("eu", "a"),
        ("eu", "b"),
        ("us", "a"),
        ("us", "b"),
    ]


def test_partial_placement_says_why_per_node() -> None:
    view = ClusterView(
        (
            node("full", free_mem=10),
            node("busy", free_cpu=0),
            node("down", status="dead"),
            node("has", servos=(ServoRef("web", "w1"),)),
            node("ok"),
            node("bad"),
        )
    )
    d = place(PlacementRequest("web", 3, 100, 100), view, exclude=["bad"])
    assert d.placements == ("ok",) and d.missing == 2
    assert d.reasons() == {
        "full": "insufficient_memory",
        "busy": "insufficient_cpu",
        "down": "not_alive",
        "has": "already_runs_project",
        "bad": "excluded",
    }
    assert d.to_dict()["refused_by_reason"]["excluded"] == 1


def test_existing_servos_count_for_spread_and_anti_affinity() -> None:
    view = ClusterView((node("e1", "eu"), node("e2", "eu"), node("u1", "us"), node("u2", "us")))
    d = place(
        PlacementRequest("web", 1, 1, 1, existing=(("s1", "e1"), ("s2", "u1"), ("s3", "e2"))), view
    )
    assert d.placements == ("u2",)


def test_max_per_host_allows_several_explicitly() -> None:
    view = ClusterView((node("only"),))
    assert place(PlacementRequest("web", 2, 100, 100), view).missing == 1
    assert place(PlacementRequest("web", 2, 100, 100, max_per_host=2), view).placements == (
        "only",
        "only",
    )


def test_binpack_prefers_fuller_nodes_spread_emptier() -> None:
    view = ClusterView((node("empty"), node("half", free_mem=512, free_cpu=500)))
    assert place(PlacementRequest("x", 1, 10, 10, spread="host"), view).placements == ("empty",)
    assert place(
        PlacementRequest("x", 1, 10, 10, spread="host", strategy="binpack"), view
    ).placements == ("half",)


def test_tied_nodes_are_not_all_chosen_by_every_project() -> None:
    view = ClusterView(tuple(node(f"n{i}") for i in range(20)))
    firsts = {place(PlacementRequest(f"p{i}", 1, 1, 1), view).placements[0] for i in range(60)}
    assert len(firsts) >= 10


def test_survive_region_refuses_a_placement_one_region_could_not_absorb() -> None:
    tight = ClusterView((node("e1", "eu"), node("u1", "us")))
    d = place(PlacementRequest("web", 2, 100, 100, survive="region"), tight)
    assert d.placements == () and d.survive_failed and dict(d.headroom)["eu"] < 0
    roomy = ClusterView((node("e1", "eu"), node("e2", "eu"), node("u1", "us"), node("u2", "us")))
    ok = place(PlacementRequest("web", 2, 100, 100, survive="region"), roomy)
    assert len(ok.placements) == 2 and all(h >= 0 for _, h in ok.headroom)


def test_headroom_names_projects_a_region_loss_would_strand() -> None:
    view = ClusterView(
        (
            node("e1", "eu", servos=(ServoRef("big", "b1"), ServoRef("small", "s1"))),
            node("u1", "us", free_mem=300, servos=(ServoRef("small", "s2"),)),
        )
    )
    impact = {i.domain: i for i in headroom(view, {"big": (500, 100), "small": (100, 100)})}
    assert impact["eu"].servos_lost == 2
    assert dict(impact["eu"].unrestorable) == {"big": 1, "small": 1}
    assert impact["us"].unrestorable == (("small", 1),)


def test_rebalance_moves_servos_into_a_new_region() -> None:
    servos = tuple(ServoRef("web", f"w{i}") for i in range(1))
    view = ClusterView(
        tuple(
            [node(f"e{i}", "eu", servos=(ServoRef("web", f"w{i}"),)) for i in range(4)]
            + [node(f"u{i}", "us") for i in range(4)]
        )
    )
    assert servos
    moves = rebalance(view, {"web": (100, 100)})
    assert len(moves) == 2
    assert all(m.from_node.startswith("e") and m.to_node.startswith("u") for m in moves)
    assert rebalance(view, {"web": (100, 100)}) == moves
