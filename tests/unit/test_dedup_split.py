"""Duplicate memory and split-packet reassembly (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.hj212 import Hj212Packet
from ingest.dedup import DedupCache
from ingest.split import SplitAssembler

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def test_dedup_detects_repeats_and_evicts_oldest() -> None:
    cache = DedupCache(max_keys=3)
    assert cache.add("a") and cache.add("b") and cache.add("c")
    assert not cache.add("a")  # duplicate; also refreshes "a"
    assert cache.add("d")  # evicts the least recently seen: "b"
    assert "b" not in cache
    assert {"a", "c", "d"} == {k for k in ("a", "b", "c", "d") if k in cache}
    cache.discard("a")
    assert cache.add("a")
    with pytest.raises(ValueError, match="positive"):
        DedupCache(0)


def _part(
    pno: int, pnum: int, groups: tuple[tuple[tuple[str, str], ...], ...], qn: str = "20261123000000000"
) -> Hj212Packet:
    return Hj212Packet(cn="2051", mn="M1", qn=qn, flag=7, pnum=pnum, pno=pno, cp=groups)


def test_split_packet_parts_in_any_order_merge_into_one() -> None:
    assembler: SplitAssembler[str] = SplitAssembler()
    time = (("DataTime", "20261123000000"),)
    assert assembler.add(_part(2, 3, (time, (("a21026-Avg", "2"),))), "m2", T0) is None
    assert assembler.add(_part(1, 3, (time, (("a21002-Avg", "1"),))), "m1", T0) is None
    done = assembler.add(_part(3, 3, ((("a19001-Avg", "9"),),)), "m3", T0)
    assert done is not None
    assert done.packet.cp == (time, (("a21002-Avg", "1"),), (("a21026-Avg", "2"),), (("a19001-Avg", "9"),))
    assert (done.packet.pnum, done.packet.pno, done.packet.flag) == (None, None, 5)  # split bit cleared
    assert sorted(done.tokens) == ["m1", "m2", "m3"]
    assert len(assembler) == 0


def test_incomplete_split_packet_expires_with_its_tokens() -> None:
    assembler: SplitAssembler[str] = SplitAssembler(timeout=timedelta(seconds=60))
    assembler.add(_part(1, 2, ()), "m1", T0)
    assert assembler.expire(T0 + timedelta(seconds=30)) == []
    (gone,) = assembler.expire(T0 + timedelta(seconds=61))
    assert (gone.mn, gone.received, gone.pnum, gone.tokens) == ("M1", [1], 2, ["m1"])
