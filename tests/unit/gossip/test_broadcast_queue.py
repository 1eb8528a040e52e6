from hypothesis import given
from hypothesis import strategies as st

from gossip.broadcast_queue import (
    PER_MSG_OVERHEAD,
    BroadcastQueue,
    PriorityBroadcasts,
    retransmit_limit,
)


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


def test_peek_chooses_as_take_does_but_counts_no_transmission() -> None:
    q = BroadcastQueue(retransmit_mult=1)
    q.put("a", ["a1"], 10)
    q.put("b", ["b1"], 10)
    for _ in range(3):  # packets to members not believed alive: the entries stay unsent
        assert q.peek(12) == [["b1"]]
    assert q.take(100, members=5) == [["b1"], ["a1"]]
    assert len(q) == 0 and q.peek(100) == []


class _ReferenceQueue:
    """The queue's contract written the slow, obvious way: sort everything on every take.

    Order: least sent first; among equals, the one that got there last first (a stamp taken
    on every put and on every send, in the order a take chose them)."""

    def __init__(self, mult: int) -> None:
        self.mult = mult
        self.items: dict[str, list] = {}  # key -> [msg, cost, sent, stamp, limit_mult]
        self.stamp = 0

    def _stamp(self) -> int:
        self.stamp += 1
        return self.stamp

    def put(self, key: str, msg: list, size: int, limit_mult: int = 1) -> None:
        self.items[key] = [msg, size + 2, 0, self._stamp(), limit_mult]

    def _choose(self, budget: int) -> list[str]:
        spent, chosen = 0, []
        for key, entry in sorted(self.items.items(), key=lambda kv: (kv[1][2], -kv[1][3])):
            if spent + entry[1] <= budget:
                spent += entry[1]
                chosen.append(key)
        return chosen

    def peek(self, budget: int) -> list:
        return [self.items[key][0] for key in self._choose(budget)]

    def take(self, budget: int, members: int) -> list:
        limit = retransmit_limit(self.mult, members)
        chosen = self._choose(budget)
        out = []
        for key in chosen:
            entry = self.items[key]
            out.append(entry[0])
            entry[2] += 1
            entry[3] = self._stamp()
            if entry[2] >= limit * entry[4]:
                del self.items[key]
        return out


@given(
    st.lists(
        st.one_of(
            # few sizes and small budgets, so exact fits and near-misses are common; sizes on
            # both sides of SMALL_COST, so that the walk among small entries only is tried
            st.tuples(
                st.sampled_from(["put", "put", "put", "put_own"]),
                st.sampled_from("abcdefghij"),
                st.sampled_from([8, 9, 18, 70, 90, 120, 150]),
            ),
            st.tuples(st.just("take"), st.integers(0, 320), st.integers(1, 2000)),
            st.tuples(st.just("peek"), st.integers(0, 320), st.just(0)),
        ),
        max_size=200,
    )
)
def test_take_matches_the_obvious_implementation(ops: list[tuple[str, object, int]]) -> None:
    """Buckets, floors, whole-bucket moves and the early stops are only speed: the choice is
    that of a full sort (least sent first, latest there first among equals, whatever fits)."""
    q, ref = BroadcastQueue(retransmit_mult=2), _ReferenceQueue(2)
    for step, (op, a, b) in enumerate(ops):
        if op in ("put", "put_own"):
            msg = [f"{a}{step}"]
            mult = 3 if op == "put_own" else 1
            q.put(str(a), msg, b, limit_mult=mult)
            ref.put(str(a), msg, b, mult)
        elif op == "peek":
            assert q.peek(int(str(a))) == ref.peek(int(str(a)))
        else:
            assert q.take(int(str(a)), members=b) == ref.take(int(str(a)), b)
        assert len(q) == len(ref.items)


def test_an_agents_own_news_is_sent_limit_mult_times_as_often() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    q.put("me", ["alive", "me"], 20, limit_mult=3)
    q.put("other", ["alive", "other"], 20)
    sent: dict[str, int] = {"me": 0, "other": 0}
    for _ in range(40):
        for msg in q.take(1000, 9):
            sent[str(msg[1])] += 1
    assert sent == {"me": 12, "other": 4}  # 4 x ceil(log10(10)) = 4, and three times that


def test_failure_news_goes_before_fresher_other_news() -> None:
    q = PriorityBroadcasts(retransmit_mult=4)
    q.put("dead", ["dead"], 10)
    assert q.take(100, members=5) == [["dead"]]  # sent once
    q.put("\x1fapp", ["app"], 10, urgent=False)  # never sent: the single queue took it first
    q.put("meta", ["meta"], 10, urgent=False)
    assert q.take(12, members=5) == [["dead"]]
    assert q.take(24, members=5) == [["dead"], ["meta"]]  # the room left goes to other news
    assert q.last_bytes == 20


def test_news_about_a_member_replaces_what_either_lane_held() -> None:
    q = PriorityBroadcasts(retransmit_mult=4)
    q.put("m", ["new metadata"], 10, urgent=False)
    q.put("m", ["dead"], 10)
    assert len(q) == 1
    assert q.take(100, members=5) == [["dead"]]
    q.put("m", ["metadata again"], 10, urgent=False)
    assert len(q) == 1
    assert q.take(100, members=5) == [["metadata again"]]


def test_priority_peek_chooses_as_take_does_but_counts_nothing() -> None:
    q = PriorityBroadcasts(retransmit_mult=1)
    q.put("a", ["a"], 10)
    q.put("b", ["b"], 10, urgent=False)
    assert q.peek(100) == q.peek(100) == [["a"], ["b"]]
    assert q.take(100, members=5) == [["a"], ["b"]]
    assert len(q) == 0  # each sent once, the limit at retransmit_mult 1


@given(
    st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(5, 60), st.booleans()), max_size=40),
    st.integers(0, 300),
)
def test_a_packet_never_exceeds_its_budget_and_failure_news_leads(
    puts: list[tuple[str, int, bool]], budget: int
) -> None:
    q = PriorityBroadcasts(retransmit_mult=3)
    lane: dict[str, bool] = {}
    for key, size, urgent in puts:
        q.put(key, [key, size], size, urgent=urgent)
        lane[key] = urgent
    assert len(q) == len(lane)
    msgs = q.take(budget, members=10)
    assert sum(m[1] + PER_MSG_OVERHEAD for m in msgs) <= budget
    assert q.last_bytes == sum(m[1] for m in msgs)
    urgency = [lane[m[0]] for m in msgs]
    assert urgency == sorted(urgency, reverse=True)  # every urgent one before the others
