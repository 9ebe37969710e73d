"""`without_gc` (ir/dag.py): the collector paused during a pass, and what the pass leaves alive
put into the oldest generation, unless the program froze objects of its own."""

import gc

import graphc
from graphc.ir.dag import without_gc
from tests.models import seed_net


def _in_generation(obj: object) -> int | None:
    for k in range(3):
        if any(o is obj for o in gc.get_objects(generation=k)):
            return k
    return None


def test_the_collector_is_paused_during_a_pass_and_on_again_after():
    seen = []
    without_gc(lambda: seen.append(gc.isenabled()))()
    assert seen == [False] and gc.isenabled()


def test_what_a_pass_leaves_alive_is_in_the_oldest_generation():
    s = graphc.simplify(seed_net())
    assert _in_generation(s.nx._node) == 2  # not scanned by the young generations' collections


def test_objects_the_program_froze_stay_frozen():
    gc.collect()
    mine = [{}]  # a container of the program's, frozen by it (as a server does before fork)
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        s = graphc.simplify(seed_net())
        assert gc.get_freeze_count() == frozen
        assert _in_generation(mine) is None  # still in the permanent generation
        assert _in_generation(s.nx._node) in (0, 1, 2)
    finally:
        gc.unfreeze()
