"""Who may have written what the build cache imports.

Nothing is imported from a directory that someone other than its owner (or root) could write:
`check_trusted` refuses group- or world-writable directories and files, and ones owned by
another user, before a build is used or loaded; `trust_problem` says why one path is refused.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import shlex
import stat
from pathlib import Path

from graphc.errors import BuildError
from graphc.runtime.cache import META, so_name


@functools.lru_cache(maxsize=64)
def private_group(gid: int, uid: int) -> bool:
    """True when group `gid` has exactly one member, the user `uid` (a "user private group",
    the default on many systems with umask 002): writable by that group is writable by the
    user alone. Groups without members are not private (setgid programs use them)."""
    try:
        group, user = grp.getgrgid(gid), pwd.getpwuid(uid)
    except KeyError:
        return False
    if set(group.gr_mem) - {user.pw_name}:
        return False
    primary = [p.pw_uid for p in pwd.getpwall() if p.pw_gid == gid]
    if any(u != uid for u in primary):
        return False
    return bool(primary) or user.pw_name in group.gr_mem


def _owner_name(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def trust_problem(
    path: Path, *, follow: bool = True, regular: bool = False, sticky_ok: bool = False
) -> str | None:
    """Why the cache must not use `path` (None when it may, or when it does not exist): it is
    owned by someone other than this user or root, or others (a group with other members, or
    everyone) may write it. `follow=False` refuses symbolic links, `regular=True` anything but
    a regular file; `sticky_ok` accepts a world-writable sticky directory such as /tmp, where
    others cannot rename or remove what is ours."""
    try:
        link = os.lstat(path)
        st = os.stat(path) if follow else link
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        return f"cannot be examined ({e.strerror})"
    uid = os.getuid()
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link (graphc never makes one there)"
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in (uid, 0):
        # Whoever owns a link can point it elsewhere after it was checked.
        return f"is a symbolic link owned by {_owner_name(link.st_uid)}, not by you"
    if regular and not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid not in (uid, 0):
        return f"is owned by {_owner_name(st.st_uid)}, not by you ({_owner_name(uid)})"
    if sticky_ok and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
        return None
    others = st.st_mode & stat.S_IWOTH
    group = st.st_mode & stat.S_IWGRP and not private_group(st.st_gid, st.st_uid)
    if others or group:
        who = "everyone" if others else f"group {_group_name(st.st_gid)}"
        return f"is writable by {who} (mode {stat.filemode(st.st_mode)})"
    return None


def _group_name(gid: int) -> str:
    try:
        return f"{grp.getgrgid(gid).gr_name!r}"
    except KeyError:
        return f"gid {gid}"


def untrusted_error(path: Path, problem: str, root: Path) -> BuildError:
    """The error for a cache path that others could have written."""
    q = shlex.quote
    if "owned by" in problem:
        fix = (
            "use a build directory of your own (set GRAPHC_BUILD_DIR, or pass out_dir= / --out), "
            f"or have the owner remove {path}"
        )
    elif "writable by" in problem:
        fix = (
            f"remove what may have been planted there with `graphc cache clear --build-dir "
            f"{q(str(root))}` and build again, or, if you are sure nobody else wrote to it, "
            f"`chmod go-w {q(str(path))}`"
        )
    else:
        fix = f"remove it (`graphc cache clear --build-dir {q(str(root))}`) and build again"
    return BuildError(
        f"refusing to use the build cache: {path} {problem}, so someone else could have put "
        f"code there that graphc would import. To fix: {fix}."
    )


def check_trusted(root: Path, model_dir: Path, entry: Path | None = None, name: str = "") -> None:
    """Raise BuildError unless the build root, the model directory, the entry and the entry's
    files (those that exist) can only have been written by this user or root."""
    checks: list[tuple[Path, dict[str, bool]]] = [
        (root, {"sticky_ok": True}),
        (model_dir, {}),
    ]
    if entry is not None:
        checks.append((entry, {"follow": False}))
        for fname in (so_name(name), f"{name}.pyx", META):
            checks.append((entry / fname, {"follow": False, "regular": True}))
    for path, how in checks:
        problem = trust_problem(path, **how)
        if problem is not None:
            raise untrusted_error(path, problem, root)
