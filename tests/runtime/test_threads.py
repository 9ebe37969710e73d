"""The module's threads (templates/pool.h): helpers share large loops and run independent
steps at once, and every way of running (one thread or more, concurrent callers, a forked
child) gives the same bits."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import graphc as gc
from tests.models import elementwise_chain, two_towers

pytestmark = pytest.mark.compiler

N = 300_007  # above PARALLEL_MIN: the fused loops are shared among the threads


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return gc.compile(elementwise_chain(), out_dir=tmp_path_factory.mktemp("threads"))


def _inputs(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=N) for k in "xab"}


def _same(a, b) -> bool:
    return a[0]["loss"].tobytes() == b[0]["loss"].tobytes() and all(
        a[1][k].tobytes() == b[1][k].tobytes() for k in a[1]
    )


def test_helpers_run_pieces_of_large_loops(chain):
    inputs = _inputs(0)
    chain.module.set_num_threads(1)
    alone = chain.value_and_grad(**inputs)
    chain.module.set_num_threads(2)
    try:
        before = chain.module.thread_stats()[1]
        deadline = time.monotonic() + 20
        while chain.module.thread_stats()[1] == before and time.monotonic() < deadline:
            assert _same(chain.value_and_grad(**inputs), alone)
        helpers, helped, _ = chain.module.thread_stats()
        assert helpers >= 1 and helped > before, "no helper ever took a piece of a loop"
    finally:
        chain.module.set_num_threads(os.cpu_count() or 1)


def test_concurrent_callers_get_the_bits_of_one_thread(chain):
    """Four Python threads share one module: one holds the pool, the others run alone."""
    batches = [_inputs(k) for k in range(4)]
    chain.module.set_num_threads(1)
    want = [chain.value_and_grad(**b) for b in batches]
    chain.module.set_num_threads(2)
    errors = []

    def work(k: int) -> None:
        for _ in range(15):
            if not _same(chain.value_and_grad(**batches[k]), want[k]):
                errors.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_forked_child_starts_its_own_helpers(chain):
    """After fork() the parent's helpers do not exist in the child: it starts helpers of its own
    (which take pieces: exit 4 if none does) and computes the same bits (exit 3 if not)."""
    script = textwrap.dedent(
        f"""
        import os, sys
        import numpy as np
        import graphc as gc
        m = gc.load({str(chain.built.entry_dir.parent)!r})
        m.module.set_num_threads(2)
        rng = np.random.default_rng(1)
        inputs = {{k: rng.normal(size={N}) for k in "xab"}}
        want = m.value_and_grad(**inputs)  # the parent's helper is running now
        pid = os.fork()
        if pid == 0:
            import time
            helped = m.module.thread_stats()[1]
            deadline = time.monotonic() + 20
            while m.module.thread_stats()[1] == helped and time.monotonic() < deadline:
                got = m.value_and_grad(**inputs)
                if any(got[1][k].tobytes() != want[1][k].tobytes() for k in "xab"):
                    os._exit(3)
            os._exit(0 if m.module.thread_stats()[1] > helped else 4)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()


def test_independent_steps_run_at_once_with_the_bits_of_one_thread(tmp_path):
    """The two softmaxes of two_towers run on two threads at once (the helper takes one)."""
    m = gc.compile(two_towers(), out_dir=tmp_path)
    assert "GC_ALONE | GC_BESIDE" in m.source  # a step of the program run beside the next
    rng = np.random.default_rng(2)
    inputs = {k: rng.normal(size=(256, 256)) for k in "xy"}
    inputs |= {k: rng.normal(size=256) for k in "ac"}
    m.module.set_num_threads(1)
    alone = m.value_and_grad(**inputs)
    m.module.set_num_threads(2)
    before = m.module.thread_stats()[1]
    deadline = time.monotonic() + 20
    while m.module.thread_stats()[1] == before and time.monotonic() < deadline:
        assert _same(m.value_and_grad(**inputs), alone)
    assert m.module.thread_stats()[1] > before, "the helper never ran a step"
    want = gc.value_and_grad(two_towers(), inputs, of="loss", wrt=["a", "c"])
    np.testing.assert_allclose(alone[0]["loss"], want[0]["loss"], rtol=1e-12)
    for k in "ac":
        np.testing.assert_allclose(alone[1][k], want[1][k], rtol=1e-10, atol=1e-14)


def _openblas_threads():
    """(get, set) of the thread setting of NumPy's bundled OpenBLAS, or None without one."""
    import ctypes
    import glob

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs",
                                  "libscipy_openblas64_*.so"))  # fmt: skip
    if not libs:
        return None
    lib = ctypes.CDLL(libs[0])
    return lib.scipy_openblas_get_num_threads64_, lib.scipy_openblas_set_num_threads64_


@pytest.mark.parametrize("shape", [(600, 300, 200), (64, 2000, 300), (333, 77, 901)])
def test_large_products_are_shared_in_pieces_with_the_bits_of_one_thread(tmp_path, shape):
    """A product large enough for BLAS's threads is cut into the same pieces on any number
    of threads; graphc's threads share them and OpenBLAS's setting is put back after."""
    m_, k_, n_ = shape
    g = gc.Graph("pieces")
    a = g.input("a", shape=(m_, k_))
    b = g.input("b", shape=(k_, n_))
    g.output("loss", gc.sum(gc.tanh(a @ b)))
    m = gc.compile(g, wrt=["a", "b"], out_dir=tmp_path)
    rng = np.random.default_rng(3)
    inputs = {"a": rng.normal(size=(m_, k_)) / 10, "b": rng.normal(size=(k_, n_)) / 10}
    blas = _openblas_threads()
    if blas is None:
        pytest.skip("NumPy's bundled OpenBLAS is not loaded: BLAS runs products its own way")
    get, set_ = blas
    saved = get()
    try:
        set_(1)  # OpenBLAS's own setting makes no difference to the bits
        m.module.set_num_threads(1)
        alone = m.value_and_grad(**inputs)
        assert get() == 1
        set_(2)
        m.module.set_num_threads(2)
        before = m.module.thread_stats()[1]
        for _ in range(5):
            assert _same(m.value_and_grad(**inputs), alone)
        assert m.module.thread_stats()[1] > before, "no helper ever took a piece"
        assert get() == 2, "OpenBLAS's thread setting was not put back"
    finally:
        set_(saved)
        m.module.set_num_threads(os.cpu_count() or 1)
    want = gc.value_and_grad(g, inputs, of="loss", wrt=["a", "b"])
    np.testing.assert_allclose(alone[0]["loss"], want[0]["loss"], rtol=1e-12)
    for k in "ab":
        np.testing.assert_allclose(alone[1][k], want[1][k], rtol=1e-10, atol=1e-13)


def test_a_large_call_lets_other_python_threads_run(tmp_path):
    """A call of more than a few microseconds lets the GIL go (a small one keeps it: taking
    it back would cost more than the call). With a switch interval longer than the calls,
    the main thread runs before the calls end only if a call lets the GIL go."""
    g = gc.Graph("gil")
    x = g.input("x", shape=("N",))
    g.output("y", gc.sum(gc.tanh(x) * gc.exp(-x * x)))
    m = gc.compile(g, functions=["forward"], out_dir=tmp_path)
    big = {"x": np.random.default_rng(0).normal(size=4_000_000)}
    assert float(m.forward(x=np.ones(8))["y"]) == pytest.approx(8 * np.tanh(1) * np.exp(-1))
    started, done = threading.Event(), threading.Event()

    def calls():
        started.set()
        for _ in range(3):
            m.forward(**big)
        done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        worker = threading.Thread(target=calls)
        worker.start()
        started.wait()
        counted = 0
        while not done.is_set() and counted < 100_000:
            counted += 1
        worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert counted == 100_000, "the main thread did not run while the calls ran"


def test_row_sums_softmax_layer_norm_and_transposes_are_shared_with_the_bits_of_one_thread(
    tmp_path,
):
    """Sums along the last axis (each row its own output), the runtime's softmax and layer
    norm (rows eight at a time) and transposes: their outer loops are shared among threads."""
    g = gc.Graph("rows")
    x = g.input("x", shape=("N", 64, 64))
    t = gc.transpose(x, (0, 2, 1))
    h = gc.nn.layer_norm(t - gc.mean(t * t, axis=-1, keepdims=True), "ln")
    g.output("loss", gc.sum(gc.softmax(h, axis=-1) * x))
    m = gc.compile(g, wrt=["x"], out_dir=tmp_path)
    shared = ("its outer loop shared, rows summed pairwise", "b0 = transpose(b1, perm=(0, 2, 1))")
    for doc in shared:
        assert doc in m.source
    rng = np.random.default_rng(5)
    inputs = {"x": rng.normal(size=(160, 64, 64))}
    inputs |= {k: rng.normal(size=s) for k, s in m.SHAPES.items() if k != "x"}
    m.module.set_num_threads(1)
    alone = m.value_and_grad(**inputs)
    m.module.set_num_threads(2)
    try:
        before = m.module.thread_stats()[1]
        deadline = time.monotonic() + 20
        while m.module.thread_stats()[1] == before and time.monotonic() < deadline:
            assert _same(m.value_and_grad(**inputs), alone)
        assert m.module.thread_stats()[1] > before, "no helper ever took a piece"
    finally:
        m.module.set_num_threads(os.cpu_count() or 1)
    want = gc.value_and_grad(g, inputs, of="loss", wrt=["x"])
    np.testing.assert_allclose(alone[0]["loss"], want[0]["loss"], rtol=1e-11)
    np.testing.assert_allclose(alone[1]["x"], want[1]["x"], rtol=1e-9, atol=1e-12)
