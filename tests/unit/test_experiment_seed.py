"""An experiment's seed makes its random choices repeatable: the same seed picks the same
pods step after step, another seed a different sequence (pure: a fake testbed)."""

from __future__ import annotations

import random

from orchestrator.experiment.schema import PodRef
from orchestrator.experiment.steps import Context


class FakeTestbed:
    def __init__(self, n: int):
        self.objs = {f"demo/web-{i}": {"metadata": {"labels": {"app": "web"}},
                                       "status": {"podIP": f"10.244.0.{i + 2}"}}
                     for i in range(n)}

    def pods(self, namespace=None):
        return list(self.objs)[::-1]          # the store's order is not the choice's order

    def get(self, kind, key):
        return self.objs[key]


def choices(seed: int, steps: int = 12) -> list[str]:
    ctx = Context(FakeTestbed(8), random.Random(seed), "/nonexistent", 0.0)
    ref = PodRef(namespace="demo", labels=(("app", "web"),), pick="random")
    return [ctx.pod(ref) for _ in range(steps)]


def test_the_same_seed_picks_the_same_pods():
    assert choices(1) == choices(1)
    assert choices(7) == choices(7)


def test_other_seeds_pick_other_sequences():
    assert len({tuple(choices(s)) for s in range(5)}) == 5


def test_first_and_all_do_not_use_the_rng():
    ctx = Context(FakeTestbed(3), random.Random(0), "/nonexistent", 0.0)
    assert ctx.pods(PodRef(namespace="demo", labels=(("app", "web"),))) == ["demo/web-0"]
    assert ctx.pods(PodRef(namespace="demo", labels=(("app", "web"),), pick="all")) == [
        "demo/web-0", "demo/web-1", "demo/web-2"]
    assert ctx.rng.random() == random.Random(0).random()
