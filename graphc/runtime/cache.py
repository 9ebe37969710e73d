"""The on-disk build cache: entry layout, verification, per-key locks and atomic publishing.

Layout under a build directory `out_dir`::

    out_dir/<name>/<key[:16]>/          one cache entry, immutable once published
        <name>.pyx  <name><EXT_SUFFIX>  meta.json
    out_dir/<name>/<name>.pyx           the latest requested build, published for people and
    out_dir/<name>/<name><EXT_SUFFIX>   for `sys.path.insert(0, "build/<name>"); import <name>`
    out_dir/<name>/meta.json            a copy of the latest entry's meta.json
    out_dir/<name>/.locks/<key[:16]>.lock   one build lock per key; publish.lock guards the copy

Every byte of an entry is checked before it is used: meta.json carries a SHA-256 of its own
content and must be exactly what graphc wrote, and it holds the SHA-256 of the .so and the .pyx.
The checks of who could have written an entry are in trust.py; what the key covers besides
the source and the flags (the compiler, the CPU target, versions) is found by toolchain.py.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sysconfig
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from graphc.errors import BuildError

META = "meta.json"
EXT_SUFFIX: str = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


def so_name(name: str) -> str:
    """The file name of the extension module `name` on this Python."""
    return f"{name}{EXT_SUFFIX}"


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


SEAL = "meta_sha256"  # the field of meta.json holding the SHA-256 of the rest of it


def meta_bytes(meta: dict[str, Any]) -> bytes:
    """meta.json exactly as graphc writes it."""
    return (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()


def seal_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """`meta` with its own checksum added, so any change to the written file is detected."""
    body = {k: v for k, v in meta.items() if k != SEAL}
    return {**body, SEAL: digest(body)}


def parse_meta(data: bytes) -> tuple[dict[str, Any] | None, str]:
    """(meta, "") when `data` is a meta.json graphc wrote and nobody changed, else (None, why)."""
    try:
        meta = json.loads(data)
    except ValueError:
        return None, "meta.json is not valid JSON (truncated or damaged)"
    if not isinstance(meta, dict):
        return None, "meta.json is not a JSON object"
    seal = meta.get(SEAL)
    if not isinstance(seal, str):
        return None, "meta.json carries no checksum of itself (written by an older graphc)"
    if seal != digest({k: v for k, v in meta.items() if k != SEAL}):
        return None, "meta.json does not match its own checksum (damaged or edited)"
    if data != meta_bytes(meta):
        return None, "meta.json is not byte for byte what graphc wrote (damaged or edited)"
    return meta, ""


def load_meta(path: Path) -> tuple[dict[str, Any] | None, str]:
    """parse_meta of the file `path`; (None, "not built") when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, "not built"
    except OSError as e:
        return None, f"meta.json cannot be read ({e.strerror})"
    return parse_meta(data)


def verify_entry(entry: Path, name: str, key: str) -> tuple[dict[str, Any] | None, str]:
    """(meta, "") when `entry` is a complete build of `key`, else (None, why it cannot be used)."""
    # meta.json is written last, inside the temporary directory, so without it nothing was
    # ever published here ("not built").
    meta, why = load_meta(entry / META)
    if meta is None:
        return None, why
    if meta.get("key") != key or meta.get("name") != name:
        return None, "meta.json belongs to another build"
    # File names are derived, never taken from meta.json, so a damaged meta cannot point
    # the loader at an arbitrary file.
    for fname, field in ((so_name(name), "so_sha256"), (f"{name}.pyx", "pyx_sha256")):
        try:
            actual = sha256_file(entry / fname)
        except OSError:
            return None, f"{fname} is missing"
        if actual != meta.get(field):
            return None, f"{fname} does not match its checksum in meta.json"
    return meta, ""


def make_dirs(path: Path) -> None:
    """Create `path` and its missing parents as rwxr-xr-x, whatever the umask."""
    missing = []
    p = path
    while not (p.exists() or p.is_symlink()) and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        # mode only removes bits from 0755 through the umask (pathlib and os.makedirs give
        # parents the default 0777 & ~umask, group-writable under umask 002).
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o755)


def _lock_file(model_dir: Path, lock_name: str) -> int:
    """An open descriptor of lock file `lock_name` in `model_dir/.locks`, made if missing.
    Neither the lock directory nor the file may be a symbolic link (one planted there would
    make graphc create or lock a file elsewhere): both are opened without following links."""
    lock_dir = model_dir / ".locks"
    make_dirs(lock_dir)
    try:
        dfd = os.open(lock_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            what = "a symbolic link" if lock_dir.is_symlink() else "a file"
            raise BuildError(
                f"{lock_dir} is {what}, not a directory; graphc keeps its lock files there: "
                "remove it"
            ) from e
        raise
    try:
        return os.open(lock_name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644, dir_fd=dfd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise BuildError(
                f"{lock_dir / lock_name} is a symbolic link, not a lock file: remove it"
            ) from e
        raise
    finally:
        os.close(dfd)


@contextlib.contextmanager
def key_lock(
    model_dir: Path, key: str, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold an exclusive lock for one cache key (other keys build in parallel)."""
    # Lock files are never deleted: removing a file others may be blocked on would let two
    # processes hold "the" lock on different inodes.
    fd = _lock_file(model_dir, f"{key[:16]}.lock")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextlib.contextmanager
def publish_lock(model_dir: Path) -> Iterator[None]:
    """Hold the short lock that keeps the published top-level files of one model consistent."""
    fd = _lock_file(model_dir, "publish.lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def try_lock(model_dir: Path, lock_name: str) -> Iterator[bool]:
    """Take the lock file `lock_name` of `model_dir` if nobody holds it; yields whether it was
    taken. Never creates the lock directory (a model without one has no builder to wait for)."""
    lock_dir = model_dir / ".locks"
    if not lock_dir.is_dir() or lock_dir.is_symlink():
        yield True
        return
    try:
        dfd = os.open(lock_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fd = os.open(lock_name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644, dir_fd=dfd)
        finally:
            os.close(dfd)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def make_build_dir(model_dir: Path, key: str) -> Path:
    """A fresh private directory next to the entry (same filesystem, so rename is atomic)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:16]}-", dir=model_dir))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a shared build dir should stay readable
    return tmp


def remove_path(path: Path) -> None:
    """Delete a file, link or directory tree, ignoring what is already gone; a symbolic link
    is removed itself, never what it points to."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)  # unlinks the links inside, follows none
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clear_stale(model_dir: Path, key: str) -> None:
    """Remove leftovers of interrupted builds of `key`; call only while holding its key lock."""
    # Only the holder of this key's lock creates these, so any that exist now are orphans
    # of a process that died mid-build.
    for pattern in (f".tmp-{key[:16]}-*", f".trash-{key[:16]}-*"):
        for p in model_dir.glob(pattern):
            remove_path(p)


def leftover_key(path: Path) -> str | None:
    """The key prefix of a build's temporary or discarded directory (.tmp-KEY-*, .trash-KEY-*),
    else None."""
    for prefix in (".tmp-", ".trash-"):
        if path.name.startswith(prefix):
            return path.name[len(prefix) : len(prefix) + 16]
    return None


def sweep_leftovers(model_dir: Path) -> list[Path]:
    """Remove what interrupted builds of any key left in `model_dir` (temporary build and
    discarded entry directories whose key nobody is building, and half-written published
    copies); return what was removed."""
    removed = []
    for p in sorted(model_dir.glob(".tmp-*")) + sorted(model_dir.glob(".trash-*")):
        k = leftover_key(p)
        if k is None:
            continue
        with try_lock(model_dir, f"{k}.lock") as free:
            if free:
                remove_path(p)
                removed.append(p)
    pubs = sorted(model_dir.glob(".pub-*"))
    if pubs:
        with try_lock(model_dir, "publish.lock") as free:
            if free:
                for p in pubs:
                    remove_path(p)
                    removed.append(p)
    return removed


def publish_entry(tmp: Path, entry: Path) -> None:
    """Move a finished build directory into place as `entry`; call only under the key lock."""
    trash = None
    if entry.exists() or entry.is_symlink():
        # rename(2) cannot replace a non-empty directory, so move the broken entry aside
        # first; readers that find no entry in between simply wait for the key lock.
        trash = entry.with_name(f".trash-{entry.name}-{uuid.uuid4().hex[:8]}")
        os.rename(entry, trash)
    os.rename(tmp, entry)
    if trash is not None:
        remove_path(trash)


def _atomic_write(dst: Path, write: Callable[[Any], None], mode: int) -> None:
    """Write `dst` through a temporary file in the same directory and os.replace it."""
    fd, tmp = tempfile.mkstemp(prefix=f".pub-{dst.name}-", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, mode)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_copy(src: Path, dst: Path, mode: int = 0o644) -> None:
    """Replace `dst` by a copy of `src` so readers see the old file or the new, never a mix."""
    # A copy, not a hard link: the dynamic loader identifies libraries by inode, so a linked
    # file would make `import <name>` reuse an already loaded entry's module state.
    with open(src, "rb") as s:
        _atomic_write(dst, lambda f: shutil.copyfileobj(s, f), mode)


def atomic_write_json(dst: Path, obj: dict[str, Any]) -> None:
    """Replace `dst` by `obj` as indented JSON (the form of meta.json), atomically."""
    data = meta_bytes(obj)
    _atomic_write(dst, lambda f: f.write(data), 0o644)


def published_problem(model_dir: Path, name: str, meta: dict[str, Any]) -> str | None:
    """Why the top-level files of `model_dir` are not an exact copy of the build `meta`
    (None when they are)."""
    try:
        if (model_dir / META).read_bytes() != meta_bytes(meta):
            return f"the published {META} is not that of entry {meta['key'][:16]}"
        for fname, field in ((so_name(name), "so_sha256"), (f"{name}.pyx", "pyx_sha256")):
            if sha256_file(model_dir / fname) != meta[field]:
                return f"the published {fname} does not match entry {meta['key'][:16]}"
    except OSError as e:
        return f"the published copy cannot be read ({e.strerror}: {e.filename})"
    return None


def is_published(model_dir: Path, name: str, meta: dict[str, Any]) -> bool:
    """True when the top-level files of `model_dir` are byte for byte those of the build."""
    return published_problem(model_dir, name, meta) is None


def publish_latest(model_dir: Path, entry: Path, name: str, meta: dict[str, Any]) -> bool:
    """Make `entry` the model's published build; False when it already was."""
    if is_published(model_dir, name, meta):
        return False
    with publish_lock(model_dir):
        # A .pub-* file now is left over from a process killed while publishing.
        for p in model_dir.glob(".pub-*"):
            remove_path(p)
        # meta.json goes last: whoever reads it finds the entry it names complete, and
        # `load` always imports from that immutable entry, not from the top-level copy.
        atomic_copy(entry / so_name(name), model_dir / so_name(name), 0o755)
        atomic_copy(entry / f"{name}.pyx", model_dir / f"{name}.pyx")
        atomic_write_json(model_dir / META, meta)
    return True


def digest(inputs: dict[str, Any]) -> str:
    """SHA-256 of canonical JSON."""
    return hashlib.sha256(
        json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
