from hypothesis import given
from hypothesis import strategies as st

from node.hlc import HybridClock, Timestamp


def test_local_writes_are_strictly_increasing_even_if_the_clock_stalls() -> None:
    clock = HybridClock("a")
    stamps = [clock.now(1000), clock.now(1000), clock.now(999), clock.now(1001)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 4


def test_write_after_observing_a_peer_orders_after_it_despite_a_slow_clock() -> None:
    fast, slow = HybridClock("fast"), HybridClock("slow")
    remote = fast.now(50_000)
    slow.observe(remote, physical_ms=10_000)
    assert slow.now(10_001) > remote


def test_ties_are_broken_by_node_name_identically_everywhere() -> None:
    a, b = Timestamp(5, 0, "a"), Timestamp(5, 0, "b")
    assert max(a, b) == max(b, a) == b


def test_wire_round_trip_and_rejects_garbage() -> None:
    import pytest

    ts = Timestamp(1, 2, "n")
    assert Timestamp.from_wire(ts.to_wire()) == ts
    for bad in (None, [1, 2], ["x", 1, "n"], [1, 2, 3], "1,2,n"):
        with pytest.raises(ValueError):
            Timestamp.from_wire(bad)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10_000)), max_size=50))
def test_every_local_write_is_after_everything_seen(ops: list[tuple[bool, int]]) -> None:
    clock, other = HybridClock("me"), HybridClock("other")
    seen: list[Timestamp] = []
    for observe, t in ops:
        if observe:
            ts = other.now(t)
            clock.observe(ts, t // 2)
            seen.append(ts)
        else:
            ts = clock.now(t)
            assert all(ts > s for s in seen)
            seen.append(ts)
