import pytest

from gossip.suspicion import Suspicion, SuspicionBounds, suspicion_bounds_s, suspicion_timeout_s


@pytest.mark.parametrize(
    ("members", "expected_min"),
    [(1, 4.0), (5, 4.0), (10, 4.0), (100, 8.0), (1000, 12.0)],
)
def test_bounds_follow_log10_of_the_cluster_size(members: int, expected_min: float) -> None:
    low, high = suspicion_bounds_s(4, 6, members, 1.0)
    assert low == pytest.approx(expected_min)
    assert high == pytest.approx(6 * expected_min)


@pytest.mark.parametrize(
    ("confirmations", "expected"),
    [(0, 24.0), (1, 24.0 - 20.0 * 0.6309), (2, 4.0), (3, 4.0)],
)
def test_timeout_shrinks_with_confirmations(confirmations: int, expected: float) -> None:
    assert suspicion_timeout_s(confirmations, 2, 4.0, 24.0) == pytest.approx(expected, abs=1e-3)


def test_no_expected_confirmations_means_the_minimum() -> None:
    assert suspicion_timeout_s(0, 0, 4.0, 24.0) == 4.0


def test_a_confirmer_counts_once() -> None:
    s = Suspicion("m", 10.0, SuspicionBounds(k=2, low_s=4.0, high_s=24.0), ("a",))
    assert s.deadline_s == pytest.approx(34.0)
    assert s.confirm("b") and not s.confirm("b") and not s.confirm("a")
    assert s.confirm("c")
    assert s.deadline_s == pytest.approx(14.0)
    assert not s.confirm("d")  # beyond k nothing more to gain


def test_full_suspicions_share_their_confirmers() -> None:
    """At the minimum timeout the names are dropped for one tuple per bounds: after a region
    outage every survivor holds a fully confirmed suspicion per lost member."""
    bounds = SuspicionBounds(k=2, low_s=4.0, high_s=24.0)
    one = Suspicion("m", 10.0, bounds, ("a",))
    two = Suspicion("n", 10.0, bounds, ("x",))
    for s, others in ((one, ("b", "c")), (two, ("y", "z"))):
        assert s.confirm(others[0]) and s.confirm(others[1])
        assert s.confirmations == 2 and s.deadline_s == pytest.approx(14.0)
        assert not s.confirm("late") and not s.confirm(others[0])
    assert one.confirmers is two.confirmers
