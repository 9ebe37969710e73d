"""Under load: Python threads sharing one module get the bits of serial calls, whichever entry
point each call takes (forward, value_and_grad, out=), and a great many calls leave the
process's resident memory, the arguments' reference counts and the number of Python objects
where they were: no reference, output block or scratch arena of a call outlives what holds it."""

import itertools
import json
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import graphc as gc
from tests.models import elementwise_chain, seed_inputs, seed_net, seed_reference

pytestmark = pytest.mark.compiler

REF = seed_reference()
INPUTS = seed_inputs()
MODES = ("value_and_grad", "positional", "forward", "value_and_grad_out", "forward_out")


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    return gc.compile(seed_net(), out_dir=tmp_path_factory.mktemp("load_seed"))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return gc.compile(elementwise_chain(), out_dir=tmp_path_factory.mktemp("load_chain"))


# ---- concurrent calls give the bits of serial calls ---------------------------------------


def _seed_inputs(rng: np.random.Generator, n: int) -> dict:
    return dict(INPUTS, x=rng.uniform(-2, 2, size=(n, 3)), y=rng.uniform(size=(n, 2)))


def _chain_inputs(rng: np.random.Generator, n: int) -> dict:
    return {k: rng.normal(size=n) for k in "xab"}


def _fresh_out(m, inputs: dict, mode: str):
    """Arrays for out= of a call by `mode` (a dict, or a pair of dicts), and a list of them."""
    if mode == "forward_out":
        out = {k: np.copy(v) for k, v in m.forward(**inputs).items()}
        dicts = (out,)
    else:
        outs, grads = m.value_and_grad(**inputs)
        out = ({k: np.copy(v) for k, v in outs.items()}, {k: np.copy(v) for k, v in grads.items()})
        dicts = out
    return out, [a for d in dicts for a in d.values()]


def _call(m, mode: str, inputs: dict, out=None):
    """One call by `mode`, as (outputs, grads) with grads {} for forward."""
    if mode == "value_and_grad":
        return m.value_and_grad(**inputs)
    if mode == "positional":
        return m.value_and_grad(*[inputs[k] for k in m.INPUTS])
    if mode == "forward":
        return m.forward(**inputs), {}
    if mode == "value_and_grad_out":
        return m.value_and_grad(**inputs, out=out)
    return m.forward(**inputs, out=out), {}


def _bits(result) -> list:
    return [(k, a.shape, a.tobytes()) for d in result for k, a in sorted(d.items())]


def _base(mode: str) -> str:
    """The plain call whose results a call by `mode` must reproduce."""
    return "forward" if mode.startswith("forward") else "value_and_grad"


def _serial(m, plans: list[list[tuple[int, str]]], batches: list[dict]) -> dict:
    """The bits of each (batch, plain call) of the plans, made alone."""
    keys = {(b, _base(mode)) for plan in plans for b, mode in plan}
    return {(b, mode): _bits(_call(m, mode, batches[b])) for b, mode in sorted(keys)}


def _hammer(m, plans: list[list[tuple[int, str]]], batches: list[dict], want: dict, calls: int):
    """Threads k = 0, 1, ... each make `calls` calls, the j-th by plans[k][j % len(plans[k])]
    (a batch and a mode), and check each result against `want` (see _serial); each also keeps
    every 97th result and checks it again at the end (no later call may write over a result
    that is still held). Returns the mismatches found, as (thread, call, mode)."""
    refcounts = [sys.getrefcount(a) for batch in batches for a in batch.values()]
    errors: list = []
    order: list[int] = []  # which thread made each call, in the order they returned
    start = threading.Barrier(len(plans))

    def work(k: int) -> None:
        plan = plans[k]
        outs = {(b, mode): _fresh_out(m, batches[b], mode) for b, mode in plan if "_out" in mode}
        kept = []
        start.wait()
        for j in range(calls):
            b, mode = plan[j % len(plan)]
            out = None
            if mode.endswith("_out"):
                out, arrays = outs[b, mode]
                for a in arrays:
                    a.fill(np.inf)  # so a call that writes nothing is seen
            got = _call(m, mode, batches[b], out)
            order.append(k)
            if _bits(got) != want[b, _base(mode)]:
                errors.append((k, j, mode))
            if out is not None:
                given = out if mode == "value_and_grad_out" else (out, {})
                if any(got[i][key] is not a for i in (0, 1) for key, a in given[i].items()):
                    errors.append((k, j, mode + " returned other arrays than out="))
            elif j % 97 == 0:
                kept.append((j, b, mode, got))
        for j, b, mode, got in kept:
            if _bits(got) != want[b, _base(mode)]:
                errors.append((k, j, mode + " result written over later"))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(plans))]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads take turns between any two bytecodes, not every 5 ms
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    if len(order) != calls * len(plans) or not any(a != b for a, b in itertools.pairwise(order)):
        errors.append(("the threads did not take turns", len(order)))
    after = [sys.getrefcount(a) for batch in batches for a in batch.values()]
    if after != refcounts:
        errors.append(("input reference counts", refcounts, after))
    return errors


def test_four_threads_share_the_seed_module(seed):
    """Four threads, 10**4 calls each, of three batch sizes per thread (N=0 included) and every
    entry point in turn: each result has the bits of the same call made alone."""
    rng = np.random.default_rng(11)
    sizes = [(1, 7, 64), (3, 50, 200), (1000, 2, 17), (0, 5, 333)]
    batches = [_seed_inputs(rng, n) for per_thread in sizes for n in per_thread]
    plans = [
        [(3 * k + j % 3, MODES[j % len(MODES)]) for j in range(3 * len(MODES))]
        for k in range(len(sizes))
    ]
    want = _serial(seed, plans, batches)
    assert _hammer(seed, plans, batches, want, calls=10**4) == []


def _chain_plans():
    rng = np.random.default_rng(12)
    # above and at PARALLEL_MIN (2**18) the loops are shared among the module's threads; the
    # last size is below it, so those calls run on their caller's thread alone
    sizes = [(300_007, 2**18), (400_000, 100_003)]
    batches = [_chain_inputs(rng, n) for per_thread in sizes for n in per_thread]
    plans = [
        [(2 * k + j % 2, MODES[j % len(MODES)]) for j in range(2 * len(MODES))]
        for k in range(len(sizes))
    ]
    return plans, batches


@pytest.mark.parametrize(
    ("threads", "calls"), [(1, 30), (2, 30), pytest.param(2, 500, marks=pytest.mark.slow)]
)
def test_two_threads_share_the_chain_module(chain, threads, calls):
    """Two threads call the elementwise chain at ~300k elements, each making `calls` calls
    (the module's own `threads` share the loops): the bits of one thread calling alone."""
    plans, batches = _chain_plans()
    before = chain.module.get_num_threads()
    try:
        chain.module.set_num_threads(1)
        want = _serial(chain, plans, batches)
        chain.module.set_num_threads(threads)
        assert _hammer(chain, plans, batches, want, calls=calls) == []
    finally:
        chain.module.set_num_threads(before)


# ---- many calls leave memory, reference counts and object counts as they were -------------

WARMUP = 10**4

# Run in a child process on its own (the memory of other tests would blur the figures): imports
# the built seed module's .so directly (graphc comes in only to word the refusals), warms every
# kind of call up, then makes `calls` calls of each kind, and prints per kind a JSON line:
# resident memory (KiB, from /proc/self/statm), the number of objects the collector tracks and
# the reference counts of every array, dict, name and dtype a call receives or returns, before
# and after.
LEAK_SCRIPT = textwrap.dedent(
    """
    import gc, importlib.util, json, os, sys
    import numpy as np

    so_path, calls, warmup, ref = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    spec = importlib.util.spec_from_file_location("seed_net", so_path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    inputs = {k: np.array(v, dtype=np.float64) for k, v in json.loads(ref).items()}
    args = tuple(inputs[k] for k in m.INPUTS)
    rng = np.random.default_rng(0)

    def batch(n):
        return dict(inputs, x=rng.uniform(size=(n, 3)), y=rng.uniform(size=(n, 2)))

    wide = batch(128)  # its scratch arena is on the heap (the spare's path), not the stack
    # arenas of different sizes in turn: the spare is reused, and freed and replaced
    sizes = [batch(n) for n in (3, 128, 600, 40)]
    vg_out, fw_out = m.value_and_grad(**inputs), m.forward(**inputs)
    bad_x = np.zeros((2, 4))
    # out= arrays of the right kinds, but one is an input: refused before anything is written
    bad_out = tuple({k: np.zeros_like(v) for k, v in d.items()} for d in vg_out)
    bad_out[1]["W1"] = inputs["W1"]

    def refused(**kwargs):
        try:
            m.value_and_grad(**kwargs)
        except ValueError:
            return
        raise AssertionError("a bad call was not refused")

    kinds = {
        "value_and_grad": lambda j: m.value_and_grad(**inputs),
        "value_and_grad(*args)": lambda j: m.value_and_grad(*args),
        "forward": lambda j: m.forward(**inputs),
        "value_and_grad(out=)": lambda j: m.value_and_grad(**inputs, out=vg_out),
        "forward(out=)": lambda j: m.forward(**inputs, out=fw_out),
        "N=128 (heap arena)": lambda j: (m.forward if j & 1 else m.value_and_grad)(**wide),
        "N=3,128,600,40": lambda j: m.value_and_grad(**sizes[j & 3]),
        "refused: bad x": lambda j: refused(**dict(inputs, x=bad_x)),
        "refused: bad out=": lambda j: refused(**inputs, out=bad_out),
    }
    watched = [
        *inputs.values(), args, vg_out, *vg_out, fw_out, bad_x, bad_out, *bad_out,
        *[a for d in (*vg_out, fw_out, *bad_out) for a in d.values()],
        *wide.values(), *[a for d in sizes for a in d.values()],
        *m.INPUTS, *m.OUTPUTS, *m.WRT, np.dtype(np.float64), m.value_and_grad, m.forward,
    ]
    page = os.sysconf("SC_PAGE_SIZE")

    def measure():
        gc.collect()
        refs = [sys.getrefcount(x) for x in watched]
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * page // 1024
        return rss, len(gc.get_objects()), refs

    for call in kinds.values():
        for j in range(warmup):
            call(j)
    for name, call in kinds.items():
        rss0, objects0, refs0 = measure()
        for j in range(calls):
            call(j)
        rss1, objects1, refs1 = measure()
        print(json.dumps(dict(kind=name, calls=calls, rss=[rss0, rss1],
                              objects=[objects0, objects1], refs=[refs0, refs1])))
    """
)


def _leak_check(seed, calls: int) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LEAK_SCRIPT,
            str(seed.built.so_path),
            str(calls),
            str(WARMUP),
            json.dumps(REF["inputs"]),
        ],
        capture_output=True,
        text=True,
        timeout=120 + calls * 2e-3,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 9
    print(f"\n{'calls':>9}  {'kind':<22} {'RSS KiB before':>14} {'after':>7}", end="")
    print(f"  {'objects before':>14} {'after':>6}  refcounts changed")
    for r in rows:
        (rss0, rss1), (o0, o1), (c0, c1) = r["rss"], r["objects"], r["refs"]
        changed = sum(a != b for a, b in zip(c0, c1, strict=True))
        print(f"{r['calls']:>9}  {r['kind']:<22} {rss0:>14} {rss1:>7}", end="")
        print(f"  {o0:>14} {o1:>6}  {changed} of {len(c0)}")
    first, last = rows[0], rows[-1]
    print(f"all {len(rows) * calls} calls: RSS {first['rss'][0]} -> {last['rss'][1]} KiB, ", end="")
    print(f"objects {first['objects'][0]} -> {last['objects'][1]}, ", end="")
    print(f"refcounts of x, y, W1, b1, W2, b2: {first['refs'][0][:6]} -> {last['refs'][1][:6]}")
    for r in rows:
        assert r["calls"] == calls
        assert r["rss"][1] - r["rss"][0] < 2048, f"{r['kind']}: resident memory grew (KiB)"
        assert r["refs"][0] == r["refs"][1], f"{r['kind']}: reference counts changed"
        assert r["objects"][1] <= r["objects"][0] + 10, f"{r['kind']}: objects accumulate"
    assert rows[-1]["rss"][1] - rows[0]["rss"][0] < 4096


def test_many_calls_leak_nothing(seed):
    """3 * 10**4 calls of each kind after a warm-up of 10**4 (10**6 in the slow version)."""
    _leak_check(seed, 3 * 10**4)


@pytest.mark.slow
def test_a_million_calls_leak_nothing(seed):
    _leak_check(seed, 10**6)


@pytest.mark.compiler
def test_float32_and_float64_builds_are_published_side_by_side(tmp_path) -> None:
    m64 = gc.compile(seed_net(), out_dir=tmp_path)
    m32 = gc.compile(seed_net(), out_dir=tmp_path, dtype="float32")
    assert m64.path == tmp_path / "seed_net" and m32.path == tmp_path / "seed_net_float32"
    for m in (m64, m32):
        assert (m.path / "seed_net.pyx").read_text() == m.source
        loaded = gc.load(m.path)
        assert loaded.DTYPE == m.DTYPE and loaded.source == m.source
    feed = {k: v.astype(np.float32) for k, v in seed_inputs().items()}
    assert gc.load(m32.path)(**feed)["loss"].dtype == np.float32
