from gossip.broadcast_queue import BroadcastQueue, retransmit_limit


def test_retransmit_limit_grows_with_log_of_cluster_size() -> None:
    assert [retransmit_limit(4, n) for n in (1, 9, 10, 99, 1000)] == [4, 4, 8, 8, 16]


def test_newer_replaces_older_least_sent_first_and_budget_respected() -> None:
    q = BroadcastQueue(retransmit_mult=1)
    q.put("a", ["a1"], 10)
    q.put("b", ["b1"], 10)
    q.put("a", ["a2"], 10)  # replaces a1
    assert len(q) == 2
    assert q.take(12, members=5) == [["a2"]]  # newest first, only one fits
    assert q.take(100, members=5) == [["b1"]]  # a2 retired: sent retransmit_limit(1, 5) = 1 time
    assert len(q) == 0


def test_least_sent_go_first() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    q.put("old", ["old"], 10)
    assert q.take(100, members=5) == [["old"]]
    q.put("new", ["new"], 10)
    assert q.take(12, members=5) == [["new"]]  # sent 0 times beats sent once


def test_entries_retire_after_their_limit() -> None:
    q = BroadcastQueue(retransmit_mult=2)
    q.put("x", ["x"], 5)
    sends = 0
    while q.take(100, members=3):
        sends += 1
    assert sends == 2
