"""The report as a person sees it: opened in headless Chromium (Debian's `chromium`, driven by
Playwright), clicked, and photographed. Skipped, saying why, when either is missing."""

from __future__ import annotations

import importlib.util
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graphc.codegen.cython import kernel_source
from graphc.compiler import run_stages
from graphc.viz.report import write_report
from graphc.viz.sourcemap import aligned, source_map, value_names
from tests.models import ROOT, seed_inputs
from tests.viz.test_sourcemap import row_kernels

CHROMIUM = os.environ.get("GRAPHC_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEED_FILE = ROOT / "examples" / "seed_network.py"

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="the browser tests need Playwright: pip install playwright",
    ),
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason=f"the browser tests need Chromium at {CHROMIUM}: apt-get install chromium",
    ),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    """The seed network's report (passes only: no C compiler needed), with what made it."""
    example = runpy.run_path(str(SEED_FILE))  # its nodes name its lines
    st = run_stages(example["graph"], source_file="seed_network.py")
    path = tmp_path_factory.mktemp("report") / "seed.html"
    write_report(st, path, inputs=seed_inputs(), model_file=SEED_FILE, check=(True, "check: ok"))
    return st, path


class Opened:
    """A page of the report with every console message and page error it produced."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning") and
                     self.errors.append(f"{m.type}: {m.text}"))  # fmt: skip
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())

    def click_node(self, key: str) -> None:
        """Click box `key` of the drawing shown, as a person would: zooming out (the − button)
        until it is inside the panel."""
        box = self.page.locator(f'.view:not([hidden]) .node[data-key="{key}"]')
        for _ in range(8):
            b, c = box.bounding_box(), self.page.locator("#canvas").bounding_box()
            inside = b and c["x"] <= b["x"] and b["x"] + b["width"] <= c["x"] + c["width"]
            if inside and c["y"] <= b["y"] and b["y"] + b["height"] <= c["y"] + c["height"]:
                break
            self.page.click("#zoom-out")
        box.click()

    def texts(self, selector: str, attr: str | None = None) -> list[str]:
        what = f"e.getAttribute({attr!r})" if attr else "e.textContent"
        js = f"els => els.map(e => {what})"
        return self.page.eval_on_selector_all(selector, js)


def not_blank(png: bytes) -> None:
    from io import BytesIO

    from PIL import Image

    im = np.asarray(Image.open(BytesIO(png)).convert("RGB"), dtype=float)
    assert im.std() > 20, "the screenshot is (nearly) one colour"
    colours = len(np.unique(im.reshape(-1, 3)[::7], axis=0))
    assert colours > 50, f"the screenshot has only {colours} colours"


def arena_node(st) -> int:
    """A forward value of value_and_grad that has a buffer of its own and is computed by a
    kernel of the module's own (the records say): its lowest such node."""
    prog, plan = st.programs["value_and_grad"]
    kernels = row_kernels(st, "value_and_grad")
    return min(
        n
        for n, s in plan.storage.items()
        if s.kind == "arena"
        and n < st.graph.next_id
        and any(x.startswith("_k") for x in kernels.get(prog.step_of[n], []))
    )


def kernel_lines(page: Opened) -> dict[str, list[int]]:
    """The lines of the source lit as a kernel's, by kernel number."""
    got = page.page.eval_on_selector_all(
        "#source .l.hk", "els => els.map(e => [e.dataset.k, Number(e.dataset.l)])"
    )
    out: dict[str, list[int]] = {}
    for k, line in got:
        out.setdefault(k, []).append(line)
    return out


def check_kernels_lit(page: Opened, st, names: set[str]) -> None:
    """The kernels lit apart are the module's own kernels named `names`, each whole: its
    lines are the functions the records render for it."""
    lines = st.source.splitlines()
    lit = kernel_lines(page)
    data = page.page.evaluate("graphcReport.data.kernels")
    assert {data[k]["name"] for k in lit} == {x for x in names if x.startswith("_k")}
    for k, got in lit.items():
        text = kernel_source(int(k), st.module.kernels[int(k)])
        assert [lines[i - 1] for i in sorted(got)] == [t for t in text.splitlines() if t.strip()]


def test_clicking_a_node_highlights_its_statements_kernel_buffer_and_model_line(
    browser, seed, tmp_path
):
    st, path = seed
    prog, plan = st.programs["value_and_grad"]
    G = prog.graph.nx
    n = arena_node(st)
    name, op = f"v{n}", G.nodes[n]["op"]
    page = Opened(browser, path)
    page.page.click("button.tab[data-stage=grad]")
    page.click_node(f"n{n}")
    # the source, strongly: the node's statement in each program computing it, and the row
    # of data under each
    lit = sorted(int(x) for x in page.texts("#source .l.hl", "data-l"))
    lines = st.source.splitlines()
    said = [i for i in lit if re.search(rf"\b{name} = {op}[\[(]", lines[i - 1])]
    computing = [f for f, (p, _) in st.programs.items() if any(n in s.nodes for s in p.steps)]
    assert len(said) == len(computing) >= 1
    for i in said:  # its row: the first line after the comment closes
        row = next(j for j in range(i, len(lines)) if lines[j - 1].rstrip().endswith("*/")) + 1
        assert row in lit and re.fullmatch(
            r"\s*(-?\d+|GC_\w+( \| GC_\w+)*)(, \S.*)?,", lines[row - 1]
        )
    assert len(lit) == 2 * len(said)
    # apart: the kernel the step computing it calls, in each program, as the records say
    names = {
        x
        for f in computing
        for k, called in row_kernels(st, f).items()
        if n in st.programs[f][0].steps[k].nodes
        for x in called
    }
    check_kernels_lit(page, st, names)
    # the timeline: the node's bar in value_and_grad's plan, and its buffer's row
    bars = page.page.eval_on_selector_all(
        '.fn[data-fn="value_and_grad"] .gc-timeline .bar.hl',
        "els => els.map(e => [e.dataset.node, e.dataset.slot])",
    )
    assert bars == [[str(n), str(plan.storage[n].ref)]]
    rows = page.texts('.fn[data-fn="value_and_grad"] .gc-timeline .slot.hl', "data-slot")
    assert rows == [str(plan.storage[n].ref)]
    # the model's line
    line = int(G.nodes[n]["loc"].rsplit(":", 1)[1])
    assert page.texts("#model .l.hl-model", "data-l") == [str(line)]
    model_text = SEED_FILE.read_text().splitlines()[line - 1]
    assert page.texts("#model .l.hl-model")[0].endswith(model_text)
    # the drawing and the details
    assert page.texts(".view:not([hidden]) .node.sel", "data-key") == [f"n{n}"]
    details = page.page.inner_text("#details")
    assert f"{name} (v{n})" in details and all(x in details for x in names)
    page.page.screenshot(path=str(tmp_path / "seed-selected.png"))
    assert not page.errors and all(u.startswith("file:") for u in page.requests)


def test_clicking_a_source_line_selects_its_node(browser, seed):
    st, path = seed
    G = st.programs["value_and_grad"][0].graph.nx
    lines = st.source.splitlines()
    i = next(k for k, t in enumerate(lines, start=1) if "adj: g" in t and "= matmul" in t)
    n = value_names(G)[lines[i - 1].split("adj: ")[1].split(" =")[0]]
    page = Opened(browser, path)
    page.page.click(f'#source .l[data-l="{i}"]')
    assert page.texts(".view:not([hidden])", "data-stage") == ["grad"]  # a backward node
    assert page.texts(".view:not([hidden]) .node.sel", "data-key") == [f"n{n}"]
    assert str(i) in page.texts("#source .l.hl", "data-l")
    assert not page.errors


def test_clicking_a_row_selects_its_steps_nodes(browser, seed):
    """A row of a fused step: every node its statements compute (forward and backward ones
    alike, so in the gradient's drawing)."""
    st, path = seed
    prog, _ = st.programs["value_and_grad"]
    k, step = max(enumerate(prog.steps), key=lambda ks: len(ks[1].nodes))
    sm = source_map(st.source, value_names(prog.graph.nx))
    row = next(r for j, r in aligned(prog, sm.program("value_and_grad")).items() if j == k)
    page = Opened(browser, path)
    page.page.click(f'#source .l[data-l="{row.rows[0]}"]')
    assert page.texts(".view:not([hidden])", "data-stage") == ["grad"]
    keys = page.texts(".view:not([hidden]) .node.sel", "data-key")
    assert sorted(keys) == sorted(f"n{n}" for n in step.nodes) and len(keys) > 1
    tr = page.page.locator('.fn[data-fn="value_and_grad"] table.schedule tr.hl')
    assert tr.count() == 1 and tr.get_attribute("data-nodes") == " ".join(map(str, step.nodes))
    assert not page.errors


@pytest.mark.parametrize("which", ["shared", "runtime's"])
def test_clicking_a_kernel_selects_the_nodes_of_every_step_calling_it(browser, seed, which):
    st, path = seed
    calls: dict[str, list[tuple[str, int]]] = {}
    for f in st.programs:
        for k, names in row_kernels(st, f).items():
            for x in names:
                calls.setdefault(x, []).append((f, k))
    # a kernel of the module's own that steps of both programs call
    name = next(x for x, c in calls.items() if x.startswith("_k") and len({f for f, _ in c}) > 1)
    nodes = {n for f, k in calls[name] for n in st.programs[f][0].steps[k].nodes}
    page = Opened(browser, path)
    if which == "shared":  # a line of its function in the source
        line = next(i for i, t in enumerate(st.source.splitlines(), 1)
                    if t.startswith(f"cdef gc_kernel {name}("))  # fmt: skip
        page.page.click(f'#source .l[data-l="{line + 2}"]')
    else:  # the runtime's gemm_d, from the schedule: it has no lines here
        name = next(x for x in calls if not x.startswith("_k"))
        nodes = {n for f, k in calls[name] for n in st.programs[f][0].steps[k].nodes}
        page.page.click(f'.fn:not([hidden]) table.schedule a.kref:text-is("{name}")')
    keys = set(page.texts(".view:not([hidden]) .node.sel", "data-key"))
    assert keys == {f"n{n}" for n in nodes}
    check_kernels_lit(page, st, {name})
    # the steps calling it, in each schedule; the statements of their nodes, strongly
    for f in st.programs:
        marked = page.texts(f'.fn[data-fn="{f}"] table.schedule tr.hk', "data-nodes")
        want = [
            " ".join(map(str, st.programs[f][0].steps[k].nodes)) for g, k in calls[name] if g == f
        ]
        assert marked == want
    lit = {int(x) for x in page.texts("#source .l.hl", "data-l")}
    sm = source_map(st.source, value_names(st.programs["value_and_grad"][0].graph.nx))
    assert lit == {i for n in nodes for i in sm.nodes[n]}
    details = page.page.inner_text("#details")
    assert name in details and f"called by {len(calls[name])} step" in details
    assert not page.errors


def test_collapse_zoom_and_open_a_group(browser, seed):
    _, path = seed
    page = Opened(browser, path)
    p = page.page
    box = lambda: p.get_attribute(".view:not([hidden]) svg", "viewBox")  # noqa: E731
    before = box()
    p.click("#zoom-in")
    assert box() != before
    p.mouse.move(500, 400)
    p.mouse.wheel(0, 300)
    p.click("#collapse")
    assert page.texts(".view:not([hidden])", "data-view") == [""]
    group = page.texts(".view:not([hidden]) .node.kind-group", "data-key")[0]
    page.click_node(group)
    assert page.texts(".view:not([hidden])", "data-view") == [group[4:]]
    assert "top level" in p.inner_text("#crumbs")
    p.click("#crumbs a")
    assert page.texts(".view:not([hidden])", "data-view") == [""]
    assert not page.errors


def test_seed_report_screenshots_are_not_blank(browser, seed, tmp_path):
    _, path = seed
    page = Opened(browser, path)
    not_blank(page.page.screenshot(full_page=True))
    page.page.click("button.tab[data-stage=grad]")
    not_blank(page.page.locator("#graph-panel").screenshot())
    not_blank(page.page.locator("#memory-panel").screenshot())
    assert not page.errors


@pytest.mark.compiler
def test_graphc_report_check_values_in_the_browser(browser, tmp_path):
    """The command as users run it: built, checked, with values; the page passes its check."""
    out = tmp_path / "seed.html"
    cmd = [sys.executable, "-m", "graphc.cli", "report", str(SEED_FILE), "--check", "--values",
           "-o", str(out)]  # fmt: skip
    env = {**os.environ, "GRAPHC_BUILD_DIR": str(tmp_path / "build")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    page = Opened(browser, out)
    assert "check passed" in page.page.inner_text("#check-chip")
    check = page.page.inner_text("#check")
    assert "interpreter" in check and "finite differences" in check
    build = page.page.inner_text("#build-panel")
    assert "built in" in build or "cache hit in" in build
    page.page.click("button.tab[data-stage=graph]")
    sig = page.texts('.view:not([hidden]) .node[data-key^="n"] tspan.t0')
    assert "sigmoid" in sig
    assert any("0.5744" in t for t in page.texts(".view:not([hidden]) tspan.val"))  # a1
    not_blank(page.page.screenshot())
    assert not page.errors


def test_a_group_left_out_of_a_large_report_says_how_to_draw_it(browser, tmp_path, monkeypatch):
    import graphc.viz.report as report
    from tests.viz.test_groups import chain

    monkeypatch.setattr(report, "BOX_BUDGET", 150)
    st = run_stages(chain(400), functions=("value_and_grad",))
    path = tmp_path / "chain.html"
    write_report(st, path)
    page = Opened(browser, path)
    left = page.page.evaluate("graphcReport.data.groups.graph.leftOut")
    parents = page.page.evaluate("graphcReport.data.groups.graph.parent")
    gid = next(g for g in left if parents[g] is not None and parents[g] not in left)
    page.page.evaluate(f"graphcReport.show('graph', {parents[gid]!r})")
    page.click_node(f"grp:{gid}")
    assert "graphc draw MODEL --view" in page.page.inner_text("#crumbs")
    assert not page.errors
