"""Inspecting and cleaning a build directory: what `graphc cache list|verify|clear` run.

Nothing here imports a built module or follows a symbolic link: entries are judged by the
same checks the loader makes (cache.verify_entry, trust.trust_problem), and removal unlinks
links themselves, renames an entry aside under its key lock before deleting it, and deletes
trees with shutil.rmtree, which does not follow the links inside them.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from graphc.runtime import cache, trust
from graphc.runtime.cache import META, so_name

_ENTRY = re.compile(r"[0-9a-f]{16}")


@dataclass
class EntryReport:
    """One cache entry (or something in its place) and what is wrong with it."""

    path: Path
    nbytes: int
    mtime: float
    problems: list[str] = field(default_factory=list)
    published: bool = False


@dataclass
class ModelReport:
    """One model directory: its entries, its published copy and what builds left behind."""

    name: str
    path: Path
    entries: list[EntryReport] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)  # besides the entries'
    building: list[Path] = field(default_factory=list)  # temporary dirs of running builds
    untrusted: bool = False  # the directory itself could have been written by others


@dataclass
class CacheReport:
    """A build directory as the cache sees it."""

    root: Path
    models: list[ModelReport] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)  # of the root itself

    def all_problems(self) -> list[tuple[Path, str]]:
        out = list(self.problems)
        for m in self.models:
            out += m.problems
            out += [(e.path, p) for e in m.entries for p in e.problems]
        return out


def _tree_bytes(path: Path) -> int:
    """Bytes of the files under `path`, links not followed."""
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _is_model_dir(path: Path) -> bool:
    """A directory graphc made for one model: its name is a module name and it holds the lock
    directory that every build creates first."""
    if path.is_symlink() or not path.is_dir() or not path.name.isidentifier():
        return False
    lock_dir = path / ".locks"
    return lock_dir.is_dir() and not lock_dir.is_symlink()


def entry_problems(entry: Path, name: str) -> tuple[dict | None, list[str]]:
    """(meta, []) when `entry` is a sound, trusted build of model `name`, else (meta or None,
    what is wrong)."""
    problem = trust.trust_problem(entry, follow=False)
    if problem is not None:
        return None, [problem]
    if not entry.is_dir():
        return None, ["is not a directory"]
    problems = []
    meta, why = cache.load_meta(entry / META)
    if meta is None:
        problems.append("meta.json is missing (an incomplete build)" if why == "not built" else why)
    elif meta.get("name") != name or str(meta.get("key", ""))[:16] != entry.name:
        problems.append("meta.json belongs to another build")
        meta = None
    else:
        meta, why = cache.verify_entry(entry, name, meta["key"])
        if meta is None:
            problems.append(why)
    expected = (so_name(name), f"{name}.pyx", META)
    for fname in expected:
        problem = trust.trust_problem(entry / fname, follow=False, regular=True)
        if problem is not None:
            problems.append(f"{fname} {problem}")
    extra = sorted(p.name for p in entry.iterdir() if p.name not in expected)
    if extra:
        problems.append(f"holds files graphc never puts there: {', '.join(extra)}")
    return (meta if not problems else None), problems


def _published_problems(model_dir: Path, name: str, sound: dict[str, dict]) -> list[str]:
    """What is wrong with the copy of the latest build at the top of `model_dir`."""
    files = [model_dir / META, model_dir / so_name(name), model_dir / f"{name}.pyx"]
    if not any(p.exists() or p.is_symlink() for p in files):
        return []
    problems = []
    for p in files:
        problem = trust.trust_problem(p, follow=False, regular=True)
        if problem is not None:
            problems.append(f"{p.name} {problem}")
    meta, why = cache.load_meta(model_dir / META)
    if meta is None:
        problems.append(f"the published {META}: {why}")
    elif str(meta.get("key", ""))[:16] not in sound:
        problems.append(
            f"the published build names entry {str(meta.get('key'))[:16]!r}, "
            "which is missing or fails verification"
        )
    else:
        problem = cache.published_problem(model_dir, name, sound[meta["key"][:16]])
        if problem is not None:
            problems.append(problem)
    return problems


def scan_model(model_dir: Path) -> ModelReport:
    """Every entry of one model directory checked, with its published copy and leftovers."""
    name = model_dir.name
    report = ModelReport(name, model_dir)
    problem = trust.trust_problem(model_dir, follow=False)
    if problem is not None:
        report.untrusted = True
        report.problems.append((model_dir, problem))
    sound: dict[str, dict] = {}
    try:
        children = sorted(model_dir.iterdir())
    except OSError as e:
        report.problems.append((model_dir, f"cannot be listed ({e.strerror})"))
        return report
    for p in children:
        if _ENTRY.fullmatch(p.name):
            st = p.lstat()
            try:
                mtime = (p / META).lstat().st_mtime if not p.is_symlink() else st.st_mtime
            except OSError:
                mtime = st.st_mtime
            meta, problems = entry_problems(p, name)
            if report.untrusted:
                problems.append("its model directory could have been written by others")
            if meta is not None and not problems:
                sound[p.name] = meta
            report.entries.append(EntryReport(p, _tree_bytes(p), mtime, problems))
        elif cache.leftover_key(p) is not None or p.name.startswith(".pub-"):
            lock = f"{cache.leftover_key(p)}.lock" if cache.leftover_key(p) else "publish.lock"
            with cache.try_lock(model_dir, lock) as free:
                if free:
                    report.problems.append((p, "left behind by an interrupted build"))
                else:
                    report.building.append(p)
    for problem in _published_problems(model_dir, name, sound):
        report.problems.append((model_dir, problem))
    published, _ = cache.load_meta(model_dir / META)
    for e in report.entries:
        e.published = published is not None and published.get("key", "")[:16] == e.path.name
    return report


def scan(root: Path) -> CacheReport:
    """The build directory `root` checked model by model; nothing is followed or imported."""
    report = CacheReport(root)
    if not root.is_dir():
        return report
    problem = trust.trust_problem(root, sticky_ok=True)
    if problem is not None:
        report.problems.append((root, problem))
    try:
        children = sorted(root.iterdir())
    except OSError as e:
        report.problems.append((root, f"cannot be listed ({e.strerror})"))
        return report
    for p in children:
        if p.is_symlink():
            if p.name.isidentifier() and (p / ".locks").is_dir():
                report.problems.append(
                    (
                        p,
                        f"is a symbolic link to {os.readlink(p)}; builds follow it, but the "
                        "cache commands do not look inside",
                    )
                )
        elif _is_model_dir(p):
            report.models.append(scan_model(p))
    return report


def _n(count: int, noun: str) -> str:
    """`1 entry`, `2 entries`, `0 models`."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1]}ies" if noun.endswith("y") else f"{count} {noun}s"


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def _age(seconds: float) -> str:
    for unit, scale in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= scale:
            return f"{seconds / scale:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


def list_cache(root: Path, out: TextIO) -> int:
    """Print each model and entry with its key prefix, size, age and whether it verifies."""
    report = scan(root)
    if not root.is_dir():
        print(f"no build directory at {root}: nothing is cached", file=out)
        return 0
    # A cleared model keeps only its lock files: not worth a line.
    models = [m for m in report.models if m.entries or m.problems or m.building]
    entries = [e for m in models for e in m.entries]
    total = sum(e.nbytes for e in entries)
    print(
        f"{root}: {_n(len(models), 'model')}, {_n(len(entries), 'entry')}, {_size(total)}",
        file=out,
    )
    now = time.time()
    for path, problem in report.problems:
        print(f"  ! {path}: {problem}", file=out)
    for m in models:
        print(f"{m.name}/", file=out)
        for e in m.entries:
            state = "ok" if not e.problems else "FAILS: " + "; ".join(e.problems)
            published = ", published" if e.published else ""
            print(
                f"  {e.path.name}  {_size(e.nbytes):>10}  {_age(now - e.mtime):>11}  "
                f"{state}{published}",
                file=out,
            )
        for path, problem in m.problems:
            where = path.name if path != m.path else "published copy"
            print(f"  ! {where}: {problem}", file=out)
        for path in m.building:
            print(f"  {path.name}: being built", file=out)
    return 0


def verify_cache(root: Path, out: TextIO) -> int:
    """Check every entry's checksums and permissions; print each problem; 1 if there is any."""
    report = scan(root)
    problems = report.all_problems()
    for path, problem in problems:
        print(f"{path}: {problem}", file=out)
    n_entries = sum(len(m.entries) for m in report.models)
    summary = f"{_n(n_entries, 'entry')} of {_n(len(report.models), 'model')} under {root}"
    if problems:
        print(
            f"{summary}: {_n(len(problems), 'problem')}. `graphc cache clear --stale` removes the "
            "entries and leftovers that fail; a build replaces what it needs.",
            file=out,
        )
        return 1
    print(f"{summary}: all verified", file=out)
    return 0


def _remove_entry(model_dir: Path, entry: Path, stale: bool, removed: list[Path]) -> str | None:
    """Remove one entry (if `stale`, only when it still fails verification); None or why not."""
    if entry.is_symlink():
        entry.unlink()  # the link, never what it points to
        removed.append(entry)
        return None
    with cache.try_lock(model_dir, f"{entry.name}.lock") as free:
        if not free:
            return "being built right now; left alone"
        if stale and not entry_problems(entry, model_dir.name)[1]:
            return None  # rebuilt soundly since it was scanned
        # Renamed first, so a reader sees the whole entry or none of it.
        trash = entry.with_name(f".trash-{entry.name}-{uuid.uuid4().hex[:8]}")
        os.rename(entry, trash)
        cache.remove_path(trash)
        removed.append(entry)
    return None


def _clear_model(m: ModelReport, stale: bool, removed: list[Path], out: TextIO) -> int:
    failures = 0
    if m.untrusted:
        # Anything in it may have been planted: the whole directory goes, lock files too.
        cache.remove_path(m.path)
        if m.path.exists():
            print(f"could not remove {m.path}; remove it by hand", file=out)
            return 1
        removed.append(m.path)
        return 0
    for e in m.entries:
        if stale and not e.problems:
            continue
        try:
            why = _remove_entry(m.path, e.path, stale, removed)
        except OSError as err:
            why = f"cannot be removed: {err}"
            failures += 1
        if why is not None:
            print(f"{e.path}: {why}", file=out)
    removed += cache.sweep_leftovers(m.path)
    published = [m.path / META, m.path / so_name(m.name), m.path / f"{m.name}.pyx"]
    if not stale or any(path == m.path for path, _ in m.problems):
        with cache.publish_lock(m.path):
            for p in published:  # meta.json first: a reader then finds nothing published
                if p.exists() or p.is_symlink():
                    cache.remove_path(p)
                    removed.append(p)
    return failures


def clear_cache(root: Path, out: TextIO, name: str | None = None, stale: bool = False) -> int:
    """Remove the cached builds under `root` (of model `name` only, if given; with `stale`
    only the entries, published copies and leftovers that fail verification). Lock files
    stay: a builder may be waiting on one. Returns 1 if something could not be removed."""
    report = scan(root)
    models = report.models
    if name is not None:
        models = [m for m in models if m.name == name]
        if not models:
            print(
                f"no cached model {name!r} under {root} (`graphc cache list` shows them)", file=out
            )
            return 1
    removed: list[Path] = []
    failures = 0
    for m in models:
        try:
            failures += _clear_model(m, stale, removed, out)
        except OSError as e:  # e.g. a read-only filesystem
            print(f"{m.path}: cannot be cleared: {e}", file=out)
            failures += 1
    for p in removed:
        print(f"removed {p}", file=out)
    for path, problem in report.problems:
        print(f"note: {path} {problem}; clearing does not change that", file=out)
    what = "that failed verification " if stale else ""
    scope = f"model {name}" if name else _n(len(models), "model")
    print(f"{_n(len(removed), 'path')} {what}removed ({scope} under {root})", file=out)
    return 1 if failures else 0
