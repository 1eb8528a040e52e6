"""Specs on gossip's application channel: news is merged and passed on, a duplicate is
answered from its timestamp before the spec is parsed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.hlc import HybridClock, Timestamp
from node.projects import Entry, Project, ProjectRegistry
from node.specs import SpecReplicator

WEB = Project(name="web", image="img", replicas=3, memory_mb=64, millicpus=100, ports=(8080,))


def replicator(tmp_path: Path, sent: list[tuple[str, Any]]) -> SpecReplicator:
    return SpecReplicator(
        "a1",
        ProjectRegistry(tmp_path / "p.db"),
        HybridClock("a1"),
        client=None,  # type: ignore[arg-type]  # nothing here goes over HTTP
        peers=list,
        broadcast=lambda key, payload: sent.append((key, payload)),
    )


def test_a_write_is_broadcast_and_news_from_gossip_is_merged_once(tmp_path: Path) -> None:
    sent: list[tuple[str, Any]] = []
    here = replicator(tmp_path / "a", sent)
    entry = here.write("web", WEB)
    here.push_soon(entry)
    assert [k for k, _ in sent] == ["s:web"]
    (_, payload) = sent[0]
    there = replicator(tmp_path / "b", [])
    assert there.merge_broadcast(payload[1]) is True  # news: gossip passes it on
    assert there.merge_broadcast(payload[1]) is False  # a duplicate: not again
    assert there.registry.digest() == here.registry.digest()


def test_a_duplicate_is_refused_before_the_spec_is_parsed(tmp_path: Path) -> None:
    r = replicator(tmp_path, [])
    entry = Entry("web", Timestamp(5, 0, "a1"), WEB)
    assert r.merge_broadcast(entry.to_wire()) is True
    garbled = {**entry.to_wire(), "spec": {**entry.to_wire()["spec"], "image": "x\n\0y"}}
    assert r.merge_broadcast(garbled) is False  # same timestamp: never parsed
    newer = {**garbled, "ts": [6, 0, "a1"]}
    assert r.merge_broadcast(newer) is False  # newer but invalid: refused by the rules
    assert r.registry.get("web") == entry
