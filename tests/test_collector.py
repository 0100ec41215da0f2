"""segment.cli.collector: the cyclic garbage collector paused, frozen and thawed around the run
path's imports (its effect on a run's time: benchmarks/RESULTS.md)."""

from __future__ import annotations

import gc
import weakref

import pytest

from segment.cli import collector


@pytest.fixture(autouse=True)
def _restore_the_collector():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_paused_collects_nothing_inside_then_freezes_what_lives_and_collects_again():
    class Node:
        pass

    with collector.paused():
        assert not gc.isenabled()
        node = Node()
        node.loop = node  # a cycle made inside the block
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    alive = weakref.ref(node)
    del node
    gc.collect()
    assert alive() is not None  # frozen: out of every collection
    collector.thaw()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None  # thawed: an unreachable cycle is collected again


def test_paused_keeps_a_disabled_collector_disabled():
    gc.disable()
    with collector.paused():
        pass
    assert not gc.isenabled()


def test_paused_restores_the_collector_and_freezes_nothing_when_the_block_raises():
    with pytest.raises(ImportError), collector.paused():
        raise ImportError("no such module")
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_exit_without_collection_freezes_everything_alive():
    collector.exit_without_collection()
    assert gc.get_freeze_count() > 0
    assert gc.get_count()[0] == 0  # the youngest generation is empty: all moved to the frozen one
