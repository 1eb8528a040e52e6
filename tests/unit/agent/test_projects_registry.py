from pathlib import Path

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from node.hlc import Timestamp
from node.projects import Entry, Project, ProjectRegistry

WEB = Project(name="web", image="img", replicas=3, memory_mb=64, millicpus=100, ports=(8080,))


def test_newest_write_wins_and_survives_a_restart(tmp_path: Path) -> None:
    reg = ProjectRegistry(tmp_path / "p.db")
    old = Entry("web", Timestamp(1, 0, "a"), WEB)
    new = Entry("web", Timestamp(2, 0, "b"), attrs.evolve(WEB, replicas=5))
    assert reg.merge([new]) == [new]
    assert reg.merge([old]) == []  # older loses, whatever order it arrives in
    reg.close()
    again = ProjectRegistry(tmp_path / "p.db")
    entry = again.get("web")
    assert entry == new and entry.project is not None and entry.project.replicas == 5


def test_tombstone_hides_a_project_and_replicates(tmp_path: Path) -> None:
    reg = ProjectRegistry(tmp_path / "p.db")
    reg.merge([Entry("web", Timestamp(1, 0, "a"), WEB)])
    reg.merge([Entry("web", Timestamp(3, 0, "a"), None)])
    assert reg.live() == []
    other = ProjectRegistry(tmp_path / "q.db")
    other.merge([Entry.from_wire(e.to_wire()) for e in reg.entries()])
    entry = other.get("web")
    assert entry is not None and entry.deleted
    assert other.digest() == reg.digest()


def test_idempotency_answers_are_durable(tmp_path: Path) -> None:
    reg = ProjectRegistry(tmp_path / "p.db")
    assert reg.recall("k") is None
    reg.remember("k", 200, '{"ok": true}')
    reg.close()
    assert ProjectRegistry(tmp_path / "p.db").recall("k") == (200, '{"ok": true}')


stamps = st.builds(Timestamp, st.integers(0, 5), st.integers(0, 3), st.sampled_from("abc"))
entries = st.builds(
    Entry,
    st.sampled_from(["web", "api", "db"]),
    stamps,
    st.one_of(st.none(), st.just(WEB)),
)


# each example opens two file-backed stores (WAL creation, fsync): no 200 ms promise on a busy host
@settings(deadline=None)
@given(st.lists(entries, max_size=12), st.randoms())
def test_merge_converges_whatever_the_order(items: list[Entry], rnd: object) -> None:
    import random
    import tempfile

    shuffled = list(items)
    assert isinstance(rnd, random.Random)
    rnd.shuffle(shuffled)
    with tempfile.TemporaryDirectory() as d:
        a, b = ProjectRegistry(Path(d) / "a.db"), ProjectRegistry(Path(d) / "b.db")
        for e in items:
            a.merge([e])
        b.merge(shuffled)
        assert a.digest() == b.digest()
        a.close()
        b.close()
