"""The built-in layered layout: boxes never overlap, edges run from the bottom of their
source to the top of their target, fused-loop outlines hold their boxes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from graphc.viz.drawing import picture
from graphc.viz.layout import layout
from tests.models import mlp, seed_net
from tests.viz.test_groups import transformer


def models():
    return {"seed": seed_net(), "mlp": mlp(np.random.default_rng(0))[0], "tf2": transformer(2)}


def inside(pt, poly) -> bool:
    """Ray casting: is point `pt` inside polygon `poly`?"""
    x, y = pt
    hit = False
    for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            hit = not hit
    return hit


@pytest.mark.parametrize("name", ["seed", "mlp", "tf2"])
@pytest.mark.parametrize("stage", ["graph", "grad"])
def test_layout_is_clean(name, stage):
    d = picture(models()[name], stage, engine="builtin", collapse=False).drawing
    lay = layout(d)
    assert set(lay.boxes) == {b.key for b in d.boxes}
    for (ka, a), (kb, b) in itertools.combinations(lay.boxes.items(), 2):
        apart = (
            a[0] + a[2] <= b[0]
            or b[0] + b[2] <= a[0]
            or a[1] + a[3] <= b[1]
            or (b[1] + b[3] <= a[1])
        )
        assert apart, (ka, kb)
    for x, y, w, h in lay.boxes.values():
        assert x >= 0 and y >= 0 and x + w <= lay.width and y + h <= lay.height
    for e, pts in zip(d.edges, lay.edges, strict=True):
        if e.kind != "data":
            continue
        s, t = lay.boxes[e.src], lay.boxes[e.dst]
        if s[1] < t[1]:  # drawn downward: from the source's bottom to the target's top
            assert pts[0][1] == pytest.approx(s[1] + s[3]) and s[0] <= pts[0][0] <= s[0] + s[2]
            assert pts[-1][1] == pytest.approx(t[1]) and t[0] <= pts[-1][0] <= t[0] + t[2]
    for lp in d.loops:
        for m in lp.members:
            x, y, w, h = lay.boxes[m]
            assert any(inside((x + w / 2, y + h / 2), poly) for poly in lay.loops[lp.key])


def test_the_seed_model_is_drawn_without_crossings():
    assert layout(picture(seed_net(), engine="builtin").drawing).crossings == 0
