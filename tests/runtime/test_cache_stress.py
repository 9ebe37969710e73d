"""The build cache under stress: many processes at once, a build killed midway, damaged files,
a read-only or full disk, directories others could write, and `graphc cache list|verify|clear`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import grp
import hashlib
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graphc.cli import main
from graphc.errors import BuildError
from graphc.runtime import BuiltModule, build_module, cache, load, load_module, trust
from graphc.runtime.cache import EXT_SUFFIX, META
from tests.models import NEEDS_CC, ROOT, seed_reference

pytestmark = [pytest.mark.compiler, NEEDS_CC]

TINY = "def twice(double x):\n    return 2 * x\n"
# Imported, it leaves a mark: the proof that a planted module ran.
EVIL = (
    "import os\n"
    "_mark = os.environ.get('GRAPHC_PLANT_MARKER')\n"
    "if _mark:\n"
    "    open(_mark, 'w').write('imported')\n\n"
    "def twice(double x):\n    return -1.0\n"
)
SO = f"tiny_mod{EXT_SUFFIX}"
PYX = "tiny_mod.pyx"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stress")


@pytest.fixture(scope="module")
def good(store: Path) -> BuiltModule:
    return build_module("tiny_mod", TINY, out_dir=store / "good")


@pytest.fixture(scope="module")
def evil(store: Path) -> BuiltModule:
    """A complete build of another source under the same module name, to plant."""
    return build_module("tiny_mod", EVIL, out_dir=store / "evil")


@pytest.fixture(scope="module")
def other(store: Path) -> BuiltModule:
    return build_module("other_mod", TINY, out_dir=store / "other")


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "planted_module_ran"
    monkeypatch.setenv("GRAPHC_PLANT_MARKER", str(path))
    return path


@pytest.fixture
def imports(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, str]]:
    """(path, sha256) of every extension module file imported during the test."""
    seen: list[tuple[Path, str]] = []
    original = importlib.util.spec_from_file_location

    def spy(name, location=None, *args, **kwargs):
        if location is not None and str(location).endswith(EXT_SUFFIX):
            seen.append((Path(location), cache.sha256_file(Path(location))))
        return original(name, location, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "spec_from_file_location", spy)
    return seen


def copy_root(src_root: Path, dst_root: Path, *names: str) -> Path:
    """A private copy of some models of a build directory, to damage."""
    dst_root.mkdir(exist_ok=True)
    for name in names:
        shutil.copytree(src_root / name, dst_root / name, symlinks=True)
    return dst_root


def good_copy(good: BuiltModule, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(root, model_dir, entry) of a private copy of the good tiny_mod cache."""
    root = copy_root(good.entry_dir.parent.parent, tmp_path / "b", "tiny_mod")
    return root, root / "tiny_mod", root / "tiny_mod" / good.entry_dir.name


def plant(entry: Path, evil: BuiltModule, key: str) -> None:
    """Replace `entry` by the evil build, with a meta.json consistent in every checksum: what
    someone able to write there could do."""
    shutil.copyfile(evil.so_path, entry / SO)
    shutil.copyfile(evil.pyx_path, entry / PYX)
    meta = cache.seal_meta(dict(evil.meta, key=key, entry=entry.name))
    (entry / META).write_bytes(cache.meta_bytes(meta))


def flip_bit(path: Path, at: int | None = None) -> bytes:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


def truncate(path: Path) -> bytes:
    data = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(data)
    return data


def damage(path: Path, how: str) -> bytes:
    if how == "truncate":
        return truncate(path)
    if path.name == META:
        # Inside the value of built_at: '2' becomes '3', still valid, canonical JSON, so only
        # meta.json's checksum of itself can tell.
        at = path.read_bytes().index(b'"built_at": "') + len(b'"built_at": "')
        return flip_bit(path, at)
    return flip_bit(path)


def cli(*argv: str) -> tuple[int, str]:
    """`graphc ARGV` run in this process: (exit status, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(argv))
    return status, out.getvalue()


def leftovers(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir() if p.name.startswith((".tmp", ".trash")))


# ---- 1. eight processes compiling the same model at once ------------------------------------

RACER = """
import json, sys, time
from pathlib import Path
import numpy as np
import graphc as gc
from graphc.runtime import run_tools
from tests.models import seed_net, seed_reference

calls = {"cythonize": 0, "cc": 0}
def counting(step, f):
    def run(*a, **k):
        calls[step] += 1
        return f(*a, **k)
    return run
run_tools._cythonize = counting("cythonize", run_tools._cythonize)
run_tools._run_cc = counting("cc", run_tools._run_cc)

out, ready, go = sys.argv[1:4]
g = seed_net()
inputs = {k: np.array(v, dtype=np.float64) for k, v in seed_reference()["inputs"].items()}
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.002)
t0 = time.perf_counter()
messages = []
m = gc.compile(g, out_dir=out, progress=messages.append)
seconds = time.perf_counter() - t0
outs, grads = m.value_and_grad(**inputs)
print(json.dumps({
    "hit": m.built.cache_hit, "key": m.built.key, "entry": str(m.built.entry_dir),
    "calls": calls, "messages": messages, "seconds": seconds,
    "loss": float(outs["loss"]),
    "bits": {k: v.tobytes().hex() for k, v in sorted({**outs, **grads}.items())},
}))
"""


def test_eight_processes_build_once_and_agree(tmp_path: Path) -> None:
    out, go = tmp_path / "out", tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(8)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(out), str(r), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline, "the racers did not start"
            assert all(p.poll() is None for p in procs), "a racer died before the start"
            time.sleep(0.01)
        t0 = time.monotonic()
        go.touch()
        results = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=300)
            assert p.returncode == 0, stderr
            results.append(json.loads(stdout))
        wall = time.monotonic() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    # Exactly one build: one Cython run and one C compile among the eight, and one miss.
    assert sum(r["calls"]["cythonize"] for r in results) == 1
    assert sum(r["calls"]["cc"] for r in results) == 1
    assert sorted(r["hit"] for r in results) == [False] + [True] * 7
    builder = next(r for r in results if not r["hit"])
    assert any(m.startswith("cythonizing") for m in builder["messages"])
    # The others really overlapped the build: some waited for its lock.
    assert any(any(m.startswith("waiting for") for m in r["messages"]) for r in results)
    # All eight loaded the same entry and computed the same bits, the reference loss.
    assert len({r["key"] for r in results}) == 1 and len({r["entry"] for r in results}) == 1
    assert len({json.dumps(r["bits"], sort_keys=True) for r in results}) == 1
    want = seed_reference()["forward"]["loss"]
    assert results[0]["loss"] == pytest.approx(want, rel=1e-12)
    model_dir = out / "seed_net"
    entries = [p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert [p.name for p in entries] == [results[0]["key"][:16]]
    assert leftovers(model_dir) == [] and not list(model_dir.glob(".pub-*"))
    assert cache.verify_entry(entries[0], "seed_net", results[0]["key"])[0] is not None
    print(
        f"\n8 processes: 1 build, 8 loads, {wall:.1f} s wall; the build "
        f"{builder['seconds']:.1f} s, hits {min(r['seconds'] for r in results if r['hit']):.2f}"
        f"-{max(r['seconds'] for r in results if r['hit']):.2f} s"
    )


# ---- 2. a build killed midway -----------------------------------------------------------------

KILLED_SOURCE = TINY + "# killed while compiling\n"
BUILDER = """
import sys
from graphc.runtime import build_module
build_module("kill_mod", sys.argv[2], out_dir=sys.argv[1])
"""
C_COMPILER = {"gcc", "cc", "cc1", "as", "collect2", "ld", "clang"}


def _group_processes(pgid: int) -> dict[int, str]:
    """{pid: command name} of the live processes in process group `pgid`."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            text = (d / "stat").read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found[int(d.name)] = comm
    return found


@pytest.mark.parametrize("victims", ["process group", "python only"])
def test_a_build_killed_during_the_c_compile_is_never_served(tmp_path: Path, victims: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(out), KILLED_SOURCE],
        cwd=ROOT,
        start_new_session=True,  # its own process group, the C compiler included
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        # Cython's C file written and a compiler running: the C compile (gcc also runs before
        # the build, to identify itself and the CPU for the key).
        while not (
            list(out.glob("kill_mod/.tmp-*/kill_mod.c"))
            and C_COMPILER & set(_group_processes(proc.pid).values())
        ):
            assert proc.poll() is None, "the build ended before its C compile was seen"
            assert time.monotonic() < deadline, "no C compiler started"
            time.sleep(0.005)
        if victims == "process group":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)  # the compiler runs on, orphaned
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    model_dir = out / "kill_mod"
    assert leftovers(model_dir), "the kill should have left the temporary build directory"
    assert [p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")] == []
    assert not (model_dir / META).exists()
    with pytest.raises(BuildError, match="no published build"):
        load(model_dir)

    messages: list[str] = []
    rebuilt = build_module("kill_mod", KILLED_SOURCE, out_dir=out, progress=messages.append)
    assert not rebuilt.cache_hit and any(m.startswith("cythonizing") for m in messages)
    assert load_module(rebuilt).twice(21.0) == 42.0
    assert cache.verify_entry(rebuilt.entry_dir, "kill_mod", rebuilt.key)[0] is not None
    entries = [p.name for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert entries == [rebuilt.key[:16]]
    if victims == "process group":
        assert leftovers(model_dir) == []  # the rebuild removed what the kill left
    else:
        # The orphaned compiler may still write into the directory the rebuild removed; once
        # it is gone, whatever it recreated is a leftover that `clear --stale` removes.
        deadline = time.monotonic() + 60
        while _group_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        status, _ = cli("cache", "clear", "--stale", "--build-dir", str(out))
        assert status == 0 and leftovers(model_dir) == []
    status, text = cli("cache", "verify", "--build-dir", str(out))
    assert status == 0, text
    assert build_module("kill_mod", KILLED_SOURCE, out_dir=out).cache_hit


def test_leftovers_of_other_keys_are_swept_by_the_next_build(
    good: BuiltModule, tmp_path: Path
) -> None:
    root, model_dir, _ = good_copy(good, tmp_path)
    orphan = model_dir / ".tmp-0123456789abcdef-xyz"
    orphan.mkdir()
    (orphan / "tiny_mod.c").write_text("half a file")
    pub = model_dir / f".pub-{SO}-abc"
    pub.write_bytes(b"half a copy")
    status, text = cli("cache", "verify", "--build-dir", str(root))
    assert status == 1 and f"{orphan}: left behind by an interrupted build" in text
    assert f"{pub}: left behind" in text
    # A build of another key, or a publish, removes them (nobody holds their locks).
    assert cache.sweep_leftovers(model_dir) == [orphan, pub]
    assert not orphan.exists() and not pub.exists()
    with cache.key_lock(model_dir, "fedcba9876543210" + "0" * 48):
        busy = model_dir / ".tmp-fedcba9876543210-abc"
        busy.mkdir()
        assert cache.sweep_leftovers(model_dir) == [] and busy.exists()  # being built
        status, text = cli("cache", "list", "--build-dir", str(root))
        assert f"{busy.name}: being built" in text
    assert cache.sweep_leftovers(model_dir) == [busy]


# ---- 3. damaged files are detected and rebuilt, never imported --------------------------------


@pytest.mark.parametrize("how", ["truncate", "bit flip"])
@pytest.mark.parametrize("fname", [SO, PYX, META])
def test_a_damaged_entry_is_rebuilt_never_imported(
    good: BuiltModule, tmp_path: Path, imports: list, fname: str, how: str
) -> None:
    root, model_dir, entry = good_copy(good, tmp_path)
    damaged = damage(entry / fname, how)
    meta, why = cache.verify_entry(entry, "tiny_mod", good.key)
    assert meta is None and why != "not built"
    status, text = cli("cache", "verify", "--build-dir", str(root))
    assert status == 1 and str(entry) in text

    messages: list[str] = []
    rebuilt = build_module("tiny_mod", TINY, out_dir=root, progress=messages.append)
    assert not rebuilt.cache_hit and rebuilt.entry_dir == entry
    assert any("is broken" in m for m in messages)
    assert (entry / fname).read_bytes() != damaged
    assert load_module(rebuilt).twice(1.5) == 3.0
    # The only file imported is the rebuilt one, whose checksum meta.json records.
    assert imports == [(entry / SO, rebuilt.meta["so_sha256"])]
    if fname == SO:
        assert hashlib.sha256(damaged).hexdigest() != rebuilt.meta["so_sha256"]
    assert cli("cache", "verify", "--build-dir", str(root))[0] == 0


@pytest.mark.parametrize("how", ["truncate", "bit flip"])
@pytest.mark.parametrize("fname", [SO, PYX, META])
def test_a_damaged_published_copy_is_detected_and_repaired(
    good: BuiltModule, tmp_path: Path, imports: list, fname: str, how: str
) -> None:
    root, model_dir, entry = good_copy(good, tmp_path)
    damage(model_dir / fname, how)
    status, text = cli("cache", "verify", "--build-dir", str(root))
    expect = f"the published {META}: " if fname == META else f"the published {fname} does not"
    assert status == 1 and f"{model_dir}: {expect}" in text
    if fname == META:
        with pytest.raises(BuildError, match="no usable published build"):
            load(model_dir)
    else:
        # load() imports the verified entry, never the published copy.
        assert load(model_dir).twice(2.0) == 4.0
        assert imports == [(entry / SO, good.meta["so_sha256"])]
    assert build_module("tiny_mod", TINY, out_dir=root).cache_hit  # a hit republishes
    for name in (SO, PYX, META):
        assert (model_dir / name).read_bytes() == (entry / name).read_bytes()
    assert cli("cache", "verify", "--build-dir", str(root))[0] == 0


def test_a_planted_so_under_a_genuine_meta_json_is_rebuilt_not_imported(
    good: BuiltModule, evil: BuiltModule, tmp_path: Path, marker: Path, imports: list
) -> None:
    root, model_dir, entry = good_copy(good, tmp_path)
    shutil.copyfile(evil.so_path, entry / SO)  # meta.json still names the genuine checksum
    rebuilt = build_module("tiny_mod", TINY, out_dir=root)
    assert not rebuilt.cache_hit
    assert load_module(rebuilt).twice(2.0) == 4.0
    assert not marker.exists()
    assert [sha for _, sha in imports] == [rebuilt.meta["so_sha256"]]
    assert evil.meta["so_sha256"] not in {sha for _, sha in imports}


# ---- 4. a read-only or full build directory ----------------------------------------------------


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True)
    return r.returncode == 0


UNSHARE = _unshare_works()

IN_NAMESPACE = """
import json, os, sys
from graphc.errors import BuildError
from graphc.runtime import build_module, load_module
root, source = sys.argv[1:3]
result = {}
for label, src in (("hit", "def twice(double x):\\n    return 2 * x\\n"), ("miss", source)):
    try:
        b = build_module("tiny_mod", src, out_dir=root)
        result[label] = {"hit": b.cache_hit, "value": load_module(b).twice(2.0)}
    except BuildError as e:
        result[label] = {"error": str(e)}
result["left"] = sorted(os.listdir(os.path.join(root, "tiny_mod")))
print(json.dumps(result))
"""


def _in_namespace(mount: str, root: Path, source: str) -> dict:
    """Run IN_NAMESPACE with `mount` (a shell command) done first, in a private mount
    namespace as a mapped root: a real read-only or full filesystem without privileges."""
    code = f"{mount} && exec {shlex.quote(sys.executable)} -c {shlex.quote(IN_NAMESPACE)} "
    code += f"{shlex.quote(str(root))} {shlex.quote(source)}"
    r = subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", code], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_read_only_build_dir_serves_hits_and_says_what_to_do(
    good: BuiltModule, tmp_path: Path
) -> None:
    root, model_dir, _ = good_copy(good, tmp_path)
    source = TINY + "# never built\n"
    if UNSHARE:
        q = shlex.quote(str(root))
        result = _in_namespace(
            f"mount --bind {q} {q} && mount -o remount,bind,ro {q} {q}", root, source
        )
        why = "read-only filesystem"
    elif os.getuid() != 0:  # without namespaces: permissions, which bind all but root
        for p in (root, model_dir, model_dir / ".locks"):
            p.chmod(0o555)
        try:
            result = json.loads(
                subprocess.run(
                    [sys.executable, "-c", IN_NAMESPACE, str(root), source],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
        finally:
            for p in (root, model_dir, model_dir / ".locks"):
                p.chmod(0o755)
        why = "permission denied"
    else:
        pytest.skip(
            "needs unshare (user namespaces) or a non-root user to make a directory "
            "read-only; test_unwritable_or_full_dir_names_it covers the message"
        )
    assert result["hit"] == {"hit": True, "value": 4.0}
    error = result["miss"]["error"]
    assert f"cannot write the build directory {root}" in error and why in error
    assert "GRAPHC_BUILD_DIR" in error and "still load" in error
    assert not [n for n in result["left"] if n.startswith(".tmp")]


@pytest.mark.skipif(not UNSHARE, reason="needs unshare (user namespaces) for a small tmpfs")
def test_a_full_tmpfs_gives_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "full"
    root.mkdir()
    q = shlex.quote(str(root))
    # 64 KiB holds the lock files and the .pyx, not Cython's C file.
    result = _in_namespace(f"mount -t tmpfs -o size=64k tmpfs {q}", root, TINY + "# full\n")
    for label in ("hit", "miss"):  # nothing cached there: both are builds, both fail
        error = result[label]["error"]
        assert f"cannot write the build directory {root}: the filesystem is full" in error
        assert "No space left on device" in error and "KiB free" in error
        assert f"graphc cache clear --build-dir {root}" in error and "GRAPHC_BUILD_DIR" in error
    assert result["left"] == [".locks"]


@pytest.mark.parametrize(
    "code, words",
    [
        (errno.ENOSPC, "the filesystem is full"),
        (errno.EDQUOT, "the disk quota is used up"),
        (errno.EROFS, "it is on a read-only filesystem"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_unwritable_or_full_dir_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(tmp_path / "b" / "tiny_mod"))

    monkeypatch.setattr(cache.tempfile, "mkdtemp", refuse)  # the private build directory
    with pytest.raises(BuildError) as info:
        build_module("tiny_mod", TINY, out_dir=tmp_path / "b")
    message = str(info.value)
    assert f"cannot write the build directory {tmp_path / 'b'}: {words}" in message
    assert "GRAPHC_BUILD_DIR" in message
    if code in (errno.ENOSPC, errno.EDQUOT):
        assert f"graphc cache clear --build-dir {tmp_path / 'b'}" in message
    if code == errno.EACCES:
        assert f"chmod u+w {tmp_path / 'b' / 'tiny_mod'}" in message


def test_disk_full_after_the_c_compile_leaves_no_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "b"
    source = TINY + "# full after gcc\n"
    full = OSError(errno.ENOSPC, "No space left on device")
    write_bytes = Path.write_bytes

    def meta_fails(self: Path, data: bytes) -> int:
        if self.name == META:
            raise full
        return write_bytes(self, data)

    # 1. meta.json, the last file of the entry, cannot be written.
    with monkeypatch.context() as m:
        m.setattr(Path, "write_bytes", meta_fails)
        with pytest.raises(BuildError, match="the filesystem is full"):
            build_module("tiny_mod", source, out_dir=root)
    model_dir = root / "tiny_mod"
    assert [p.name for p in model_dir.iterdir()] == [".locks"]  # no entry, no temporary dir

    def copy_fails(*args, **kwargs):
        raise full

    # 2. The entry is complete but the published copy cannot be written.
    with monkeypatch.context() as m:
        m.setattr(cache.shutil, "copyfileobj", copy_fails)
        with pytest.raises(BuildError, match=f"cannot write the build directory {root}"):
            build_module("tiny_mod", source, out_dir=root)
    assert not list(model_dir.glob(".pub-*")) and not (model_dir / SO).exists()

    # 3. With space again: a hit (the entry was sound), published now.
    built = build_module("tiny_mod", source, out_dir=root)
    assert built.cache_hit and (model_dir / SO).read_bytes() == built.so_path.read_bytes()
    assert load_module(built).twice(3.0) == 6.0


def test_a_compiler_out_of_space_is_reported_as_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "fake-cc"
    fake.write_text(
        "#!/bin/sh\necho 'cc1: fatal error: error writing to /tmp/ccA.s: No space left on "
        "device' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    with pytest.raises(BuildError) as info:
        build_module("tiny_mod", TINY, out_dir=tmp_path / "b")
    message = str(info.value)
    assert f"cannot write the build directory {tmp_path / 'b'}: the filesystem is full" in message
    assert "error writing to /tmp/ccA.s" in message and "GRAPHC_BUILD_DIR" in message
    assert not leftovers(tmp_path / "b" / "tiny_mod")


# ---- 5. directories and files others could write are refused ----------------------------------


def _shared_gid() -> int | None:
    """A group this process may give its files, which is not the owner's alone."""
    gids = [g.gr_gid for g in grp.getgrall()] if os.getuid() == 0 else os.getgroups()
    return next((g for g in gids if not trust.private_group(g, os.getuid())), None)


@pytest.mark.parametrize(
    "target, mode",
    [
        ("root", 0o777),
        ("model", stat.S_IWOTH),
        ("entry", stat.S_IWOTH),
        ("entry", stat.S_IWGRP),
        ("so", stat.S_IWOTH),
        ("meta", stat.S_IWGRP),
    ],
)
def test_a_plant_in_a_path_others_can_write_is_refused(
    good: BuiltModule,
    evil: BuiltModule,
    tmp_path: Path,
    marker: Path,
    imports: list,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    mode: int,
) -> None:
    root, model_dir, entry = good_copy(good, tmp_path)
    plant(entry, evil, good.key)
    path = {"root": root, "model": model_dir, "entry": entry, "so": entry / SO}.get(
        target, entry / META
    )
    if target == "root":
        path.chmod(mode)  # world-writable without the sticky bit
    else:
        path.chmod(path.stat().st_mode | mode)
    if mode == stat.S_IWGRP:
        gid = _shared_gid()
        if gid is not None:
            os.chown(path, -1, gid)
        else:  # the user is in no group with other members: pretend theirs has some
            monkeypatch.setattr(trust, "private_group", lambda gid, uid: False)
    for attempt in (
        lambda: build_module("tiny_mod", TINY, out_dir=root),
        lambda: load(model_dir),
        lambda: load_module(dataclasses.replace(good, entry_dir=entry, so_path=entry / SO)),
    ):
        with pytest.raises(BuildError) as info:
            attempt()
        message = str(info.value)
        assert f"refusing to use the build cache: {path} is writable by" in message
        assert f"chmod go-w {path}" in message and f"graphc cache clear --build-dir {root}" in (
            message
        )
    assert not marker.exists() and imports == []
    status, text = cli("cache", "verify", "--build-dir", str(root))
    assert status == 1 and "writable by" in text


def test_an_entry_owned_by_another_user_is_refused(
    good: BuiltModule,
    evil: BuiltModule,
    tmp_path: Path,
    marker: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, model_dir, entry = good_copy(good, tmp_path)
    plant(entry, evil, good.key)
    if os.getuid() == 0:
        os.chown(entry / SO, 65534, -1)  # nobody
    else:  # only root can give files away: be someone else instead
        uid = os.getuid()
        monkeypatch.setattr(trust.os, "getuid", lambda: uid + 4242)
    with pytest.raises(BuildError) as info:
        build_module("tiny_mod", TINY, out_dir=root)
    message = str(info.value)
    assert "refusing to use the build cache" in message and "is owned by uid" in message
    assert "GRAPHC_BUILD_DIR" in message
    assert not marker.exists()


def test_a_consistent_plant_is_stopped_only_by_the_permission_check(
    good: BuiltModule, evil: BuiltModule, tmp_path: Path, marker: Path
) -> None:
    """Checksums stop damage, not someone who can write the cache: with the permissions as
    graphc makes them, a plant by the owner is served (so the refusals above are what stop
    other users)."""
    root, model_dir, entry = good_copy(good, tmp_path)
    plant(entry, evil, good.key)
    built = build_module("tiny_mod", TINY, out_dir=root)
    assert built.cache_hit and load_module(built).twice(2.0) == -1.0 and marker.exists()


def test_a_sticky_world_writable_root_is_accepted(good: BuiltModule, tmp_path: Path) -> None:
    root, _, _ = good_copy(good, tmp_path)
    root.chmod(0o1777)  # like /tmp: others cannot rename or remove what is ours
    built = build_module("tiny_mod", TINY, out_dir=root)
    assert built.cache_hit and load_module(built).twice(1.0) == 2.0


def test_builds_under_umask_002_are_not_group_writable(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        built = build_module("tiny_mod", TINY + "# umask\n", out_dir=tmp_path / "a" / "b")
    finally:
        os.umask(old)
    made = [tmp_path / "a", tmp_path / "a" / "b"]
    for dirpath, dirs, files in os.walk(tmp_path / "a"):
        made += [Path(dirpath) / n for n in dirs + files if not n.endswith(".lock")]
    writable = [p for p in made if p.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)]
    assert writable == []
    assert build_module("tiny_mod", TINY + "# umask\n", out_dir=tmp_path / "a" / "b").cache_hit
    assert load_module(built).twice(0.5) == 1.0


# ---- 6. graphc cache list | verify | clear ----------------------------------------------------


def two_models(good: BuiltModule, evil: BuiltModule, other: BuiltModule, tmp_path: Path) -> Path:
    """A build dir with tiny_mod (two entries, the good one published) and other_mod, beside
    a file and a directory that are not graphc's."""
    root = copy_root(good.entry_dir.parent.parent, tmp_path / "b", "tiny_mod")
    shutil.copytree(evil.entry_dir, root / "tiny_mod" / evil.entry_dir.name)
    copy_root(other.entry_dir.parent.parent, root, "other_mod")
    (root / "README.md").write_text("not graphc's")
    (root / "notes").mkdir()
    (root / "notes" / "a.txt").write_text("not graphc's either")
    # Looks a little like a model directory, but no build ever locked anything there.
    (root / "notes" / "meta.json").write_text("{}")
    (root / "notes" / "0123456789abcdef").mkdir()
    return root


def test_cache_list(good, evil, other, tmp_path: Path) -> None:
    root = two_models(good, evil, other, tmp_path)
    status, text = cli("cache", "list", "--build-dir", str(root))
    assert status == 0
    lines = text.splitlines()
    assert re.fullmatch(rf"{re.escape(str(root))}: 2 models, 3 entries, \d+\.\d [KM]iB", lines[0])
    row = next(ln for ln in lines if good.key[:16] in ln)
    assert re.search(r"\d\.\d KiB +\d+ (s|min|h) ago +ok, published$", row), row
    assert next(ln for ln in lines if evil.key[:16] in ln).endswith("ok")
    assert "other_mod/" in lines and "tiny_mod/" in lines and "notes" not in text

    flip_bit(root / "tiny_mod" / evil.entry_dir.name / SO)
    status, text = cli("cache", "list", "--build-dir", str(root))
    assert status == 0
    row = next(ln for ln in text.splitlines() if evil.key[:16] in ln)
    assert f"FAILS: {SO} does not match its checksum in meta.json" in row


def test_cache_verify_reports_every_problem(good, evil, other, tmp_path: Path) -> None:
    root = two_models(good, evil, other, tmp_path)
    status, text = cli("cache", "verify", "--build-dir", str(root))
    assert status == 0
    assert text.strip().endswith(f"3 entries of 2 models under {root}: all verified")
    tiny, other_dir = root / "tiny_mod", root / "other_mod"
    bad_entry = tiny / evil.entry_dir.name
    flip_bit(bad_entry / PYX)
    truncate(tiny / SO)  # the published copy
    (tiny / ".tmp-0000000000000000-x").mkdir()
    open_entry = other_dir / other.entry_dir.name
    open_entry.chmod(0o777)
    status, text = cli("cache", "verify", "--build-dir", str(root))
    assert status == 1
    assert f"{bad_entry}: {PYX} does not match its checksum in meta.json\n" in text
    assert f"{tiny}: the published {SO} does not match entry {good.key[:16]}\n" in text
    assert f"{tiny / '.tmp-0000000000000000-x'}: left behind by an interrupted build\n" in text
    assert f"{open_entry}: is writable by everyone (mode drwxrwxrwx)\n" in text
    assert f"{other_dir}: the published build names entry '{other.key[:16]}', which" in text
    assert f"under {root}: 5 problems." in text
    r = subprocess.run(
        [sys.executable, "-m", "graphc.cli", "cache", "verify", "--build-dir", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and f"{bad_entry}: {PYX} does not match" in r.stdout


def test_cache_clear_stale_removes_only_what_fails(good, evil, other, tmp_path: Path) -> None:
    root = two_models(good, evil, other, tmp_path)
    bad_entry = root / "tiny_mod" / evil.entry_dir.name
    truncate(bad_entry / META)
    (root / "tiny_mod" / ".trash-0000000000000000-x").mkdir()
    status, text = cli("cache", "clear", "--stale", "--build-dir", str(root))
    assert status == 0 and f"removed {bad_entry}\n" in text
    assert not bad_entry.exists() and leftovers(root / "tiny_mod") == []
    assert (root / "tiny_mod" / good.entry_dir.name).is_dir()
    assert (root / "other_mod" / other.entry_dir.name).is_dir()
    assert cli("cache", "verify", "--build-dir", str(root))[0] == 0
    assert build_module("tiny_mod", TINY, out_dir=root).cache_hit
    assert build_module("other_mod", TINY, out_dir=root).cache_hit


def test_cache_clear_one_model_then_all(
    good, evil, other, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = two_models(good, evil, other, tmp_path)
    status, text = cli("cache", "clear", "other_mod", "--build-dir", str(root))
    assert status == 0 and "(model other_mod under" in text
    assert sorted(p.name for p in (root / "other_mod").iterdir()) == [".locks"]  # locks stay
    assert build_module("tiny_mod", TINY, out_dir=root).cache_hit

    monkeypatch.setenv("GRAPHC_BUILD_DIR", str(root))  # the default, as for compile
    status, text = cli("cache", "clear")
    assert status == 0 and f"under {root})" in text
    assert sorted(p.name for p in (root / "tiny_mod").iterdir()) == [".locks"]
    assert (root / "README.md").read_text() == "not graphc's"
    assert sorted(p.name for p in (root / "notes").iterdir()) == [
        "0123456789abcdef",
        "a.txt",
        "meta.json",
    ]
    status, text = cli("cache", "list")
    assert status == 0 and text.startswith(f"{root}: 0 models, 0 entries, 0 B")
    assert cli("cache", "clear", "nothing_here")[0] == 1
    with pytest.raises(SystemExit) as e:
        main(["cache", "clear", "../outside"])
    assert e.value.code == 2


def test_cache_clear_never_follows_links_out_of_the_build_dir(
    good: BuiltModule, tmp_path: Path
) -> None:
    root, model_dir, entry = good_copy(good, tmp_path)
    outside = tmp_path / "outside"
    victim_entry = outside / "victim_entry"
    victim_entry.mkdir(parents=True)
    (victim_entry / SO).write_bytes(b"keep me")
    (outside / "keep.txt").write_text("keep me")
    fake_model = outside / "fake_mod"
    shutil.copytree(model_dir, fake_model)
    (model_dir / "0123456789abcdef").symlink_to(victim_entry)  # an "entry" that is a link
    (entry / "link_out").symlink_to(outside / "keep.txt")  # a link inside an entry
    (root / "linked_mod").symlink_to(fake_model)  # a "model" that is a link
    status, text = cli("cache", "verify", "--build-dir", str(root))
    assert status == 1 and f"{model_dir / '0123456789abcdef'}: is a symbolic link" in text
    assert f"{root / 'linked_mod'}: is a symbolic link to {fake_model}" in text
    assert f"{entry}: holds files graphc never puts there: link_out" in text
    before = sorted(str(p) for p in outside.rglob("*"))

    status, text = cli("cache", "clear", "--stale", "--build-dir", str(root))
    assert not (model_dir / "0123456789abcdef").is_symlink()  # the link went, not its target
    status, text = cli("cache", "clear", "--build-dir", str(root))
    assert status == 0 and not entry.exists()
    assert sorted(str(p) for p in outside.rglob("*")) == before
    assert (victim_entry / SO).read_bytes() == b"keep me"
    assert (outside / "keep.txt").read_text() == "keep me"
    assert (root / "linked_mod").is_symlink()  # not ours to judge; reported, left alone
    assert f"note: {root / 'linked_mod'} is a symbolic link" in text


def test_clear_removes_a_model_dir_others_could_write(good: BuiltModule, tmp_path: Path) -> None:
    root, model_dir, _ = good_copy(good, tmp_path)
    model_dir.chmod(0o777)
    with pytest.raises(BuildError, match="writable by everyone"):
        build_module("tiny_mod", TINY, out_dir=root)
    status, text = cli("cache", "clear", "--stale", "--build-dir", str(root))
    assert status == 0 and f"removed {model_dir}\n" in text and not model_dir.exists()


def test_list_and_verify_without_a_build_dir(tmp_path: Path) -> None:
    status, text = cli("cache", "list", "--build-dir", str(tmp_path / "none"))
    assert status == 0 and "nothing is cached" in text
    status, text = cli("cache", "verify", "--build-dir", str(tmp_path / "none"))
    assert status == 0 and "0 entries of 0 models" in text


def test_a_published_key_that_is_not_a_digest_is_refused(
    good: BuiltModule, evil: BuiltModule, tmp_path: Path, marker: Path
) -> None:
    """gc.load takes the entry's directory from the key in meta.json: a key that is a path
    (here the absolute path of another build) would swap the directory whose trust was
    checked for one that never was."""
    root, model_dir, _ = good_copy(good, tmp_path)
    meta = cache.seal_meta(dict(good.meta, key=str(evil.entry_dir)))
    (model_dir / META).write_bytes(cache.meta_bytes(meta))
    with pytest.raises(BuildError, match="its key is not a SHA-256 digest"):
        load(model_dir)
    assert not marker.exists()


@pytest.mark.parametrize("what", ["lock directory", "lock file"])
def test_a_planted_link_in_the_locks_is_refused(good: BuiltModule, tmp_path: Path, what: str):
    root, model_dir, entry = good_copy(good, tmp_path)
    shutil.rmtree(entry)  # so that the next build_module takes the key's lock
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    locks = model_dir / ".locks"
    if what == "lock directory":
        shutil.rmtree(locks, ignore_errors=True)
        locks.symlink_to(elsewhere)
        message = "is a symbolic link, not a directory"
    else:
        locks.mkdir(exist_ok=True)
        lock = locks / f"{good.key[:16]}.lock"
        lock.unlink(missing_ok=True)
        lock.symlink_to(elsewhere / "victim")
        message = "is a symbolic link, not a lock file"
    with pytest.raises(BuildError, match=message):
        build_module("tiny_mod", TINY, out_dir=root)
    assert list(elsewhere.iterdir()) == []  # nothing created through the link


CHAIN_MODEL = """
import graphc as gc
graph = gc.Graph("interrupted")
h = graph.input("x", shape=("N", 8))
for k in range(400):
    h = gc.tanh(h * graph.param(f"w{k}", shape=(8,)))
graph.output("loss", gc.sum(h))
"""


def test_ctrl_c_during_the_c_compile_stops_the_compiler_and_says_so(tmp_path: Path) -> None:
    """SIGINT to graphc alone (as a notebook interrupts its kernel, not the whole process
    group): graphc exits 130 saying it was interrupted, no traceback, and kills the compiler
    and what it started (cc1, as), which would otherwise run on orphaned."""
    (tmp_path / "model.py").write_text(CHAIN_MODEL)
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphc.cli", "compile", "model.py", "--out", str(tmp_path / "b")],
        cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not {"cc1", "as"} & set(_group_processes(proc.pid).values()):
            assert proc.poll() is None and time.monotonic() < deadline, "no compiler ran"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "graphc: interrupted" in err and "Traceback" not in err
    deadline = time.monotonic() + 1  # killed, not left to finish its seconds of work
    while C_COMPILER & set(_group_processes(proc.pid).values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not C_COMPILER & set(_group_processes(proc.pid).values())
