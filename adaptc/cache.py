"""adaptc's build cache: what adaptc compiles and then loads into this process (the host build's
``libmodel.so``) or hands to a tool (QEMU's armstat plugin, the firmware ELF QEMU runs), kept
between runs by content -- and filled by nothing but this user's adaptc.

Where: ``$ADAPTC_CACHE``, else ``$XDG_CACHE_HOME/adaptc``, else ``~/.cache/adaptc``. An entry is
the directory ``<root>/<kind>/<key>/``: ``kind`` names what builds it ("host", "arm",
"qemu-plugin"), ``key`` is ``key(...)`` of everything the build reads (compiler, flags, sources).

Trust -- whatever can write the cache can run code in the user's process, so:

* The root is created with mode 0700 and checked before every use (``root()``): a directory
  (symlinks resolved) owned by this user, that group and others cannot read, write or enter.
  Anything else -- say a directory another local user made first in a world-writable /tmp -- is
  refused with ``CacheError``, never used and never repaired.
* An entry is built in a private temporary directory (``mkdtemp``) next to where it goes,
  receives its record (``RECORD``: the size and sha256 of every file in it, written by adaptc)
  and is renamed into place in one step, so an entry is either absent or complete. When two
  processes build the same entry, both build, the first rename wins, and the others discard
  their copy and use the winner's.
* An existing entry is used only after every file in it is found equal to its record, with no
  file missing or added (``entry``), and ``verified(path)`` checks the one file again right
  before it is loaded or executed. adaptc never writes into a finished entry: one that differs
  from its record, or has none, was changed or planted by something else and is refused with
  ``CacheError`` (naming the file and the fix: remove the entry), not rebuilt over.

Size -- an entry is touched (its directory's mtime) whenever it is used; after a build (at most
once every ``EVICT_INTERVAL_S`` seconds, by any process) the
least recently used entries are removed (``evict``) until the cache holds at most
``$ADAPTC_CACHE_MAX_MB`` megabytes (MiB; default ``DEFAULT_MAX_MB``), sparing the entry just built
and any entry used in the last ``GRACE_S`` seconds (another process may be about to read it: the
bound can be passed for that long). Build directories of processes that died go after
``STALE_S`` seconds.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from adaptc.errors import CacheError

ROOT_ENV = "ADAPTC_CACHE"
MAX_MB_ENV = "ADAPTC_CACHE_MAX_MB"
DEFAULT_MAX_MB = 256
RECORD = ".adaptc-record.json"
GRACE_S = 300.0          # an entry used this recently is never evicted
STALE_S = 3600.0         # a build (or eviction) directory this old belongs to a process that died
EVICT_INTERVAL_S = 60.0  # the bound is enforced at most this often: it scans every entry
LAYOUT = 1               # hashed into every key: entries of another layout never match


def root() -> Path:
    """The cache root, created (mode 0700, parents as needed) if missing, symlinks resolved.
    Ensures: a directory owned by this user that group and others cannot access at all;
    CacheError otherwise (also when it cannot be created)."""
    env = os.environ.get(ROOT_ENV)
    if env:
        d = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        d = (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "adaptc"
    d = Path(os.path.abspath(d))
    if not os.path.lexists(d):
        try:
            d.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                os.mkdir(d, 0o700)
                os.chmod(d, 0o700)      # the umask may have narrowed it
            except FileExistsError:     # made at the same moment, by us or not: checked below
                pass
        except OSError as e:
            raise CacheError(f"{d}: cannot create adaptc's build cache ({e.strerror or e}); "
                             f"set {ROOT_ENV} to a directory of your own") from None
    return check_private(d)


def check_private(d: Path) -> Path:
    """``d`` with symlinks resolved, if it is a directory owned by this user that group and
    others cannot read, write or enter; CacheError (naming it, its owner and mode, and the fix)
    otherwise."""
    real = Path(d).resolve()
    try:
        st = os.stat(real)
    except OSError as e:
        raise CacheError(f"{d}: cannot use it as adaptc's build cache ({e.strerror}); "
                         f"remove it or set {ROOT_ENV} to a directory of your own") from None
    uid, mode = os.getuid(), stat.S_IMODE(st.st_mode)
    wrong = []
    if not stat.S_ISDIR(st.st_mode):
        wrong.append("is not a directory")
    if st.st_uid != uid:
        wrong.append(f"is owned by uid {st.st_uid}, not by you (uid {uid})")
    if mode & 0o077:
        wrong.append(f"lets group or others in (mode {mode:04o}, must be 0700)")
    if wrong:
        raise CacheError(f"{real}: refusing to use it as adaptc's build cache: it {' and '.join(wrong)} "
                         f"(owner uid {st.st_uid}, mode {mode:04o}); what is in it could run inside your "
                         f"process. Remove it{' (or chmod 700 it)' if st.st_uid == uid else ''}, or set "
                         f"{ROOT_ENV} to a directory of your own")
    return real


def max_bytes() -> int:
    """The size bound: ``$ADAPTC_CACHE_MAX_MB`` MiB (a non-negative number; default
    ``DEFAULT_MAX_MB``); CacheError on anything else."""
    text = os.environ.get(MAX_MB_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_MB << 20
    try:
        mb = float(text)
    except ValueError:
        mb = -1.0
    if not mb >= 0:                     # also NaN
        raise CacheError(f"{MAX_MB_ENV}={text!r}: expected a size in megabytes, e.g. {DEFAULT_MAX_MB}")
    return int(mb * (1 << 20))


def key(*parts: str) -> str:
    """The key of a build that reads ``parts`` (compiler, flags, file names and contents): 32
    hex digits of their sha256, each part length-prefixed (no two lists of parts share a key)
    and the cache layout hashed in."""
    h = hashlib.sha256(f"adaptc-cache-layout-{LAYOUT}".encode())
    for p in parts:
        b = p.encode()
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


def entry(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """The directory of entry ``kind/key``, checked against its record: the existing one, or one
    that ``build(work)`` makes by filling the empty private directory ``work`` (whatever it
    raises propagates, and nothing is left behind). Touches the entry; after a build, evicts
    least recently used entries over the bound. CacheError: the entry differs from its record
    or has none."""
    kind_dir = root() / kind
    kind_dir.mkdir(mode=0o700, exist_ok=True)
    final = kind_dir / key
    for _ in range(3):                  # an old entry may be evicted by another process meanwhile
        built = False
        if not os.path.lexists(final):
            built = _build(final, build)
        try:
            check_entry(final)
        except FileNotFoundError:
            if os.path.lexists(final):
                raise
            continue
        _touch(final)
        if built and _eviction_due():
            evict(keep=final)
        return final
    raise CacheError(f"{final}: removed by another process each time it was built; is {MAX_MB_ENV} "
                     "too small for what runs at once?")


def _build(final: Path, build: Callable[[Path], None]) -> bool:
    """Build ``final`` in a private directory, record it and rename it into place; False when
    another process's rename got there first (its entry stands, ours is discarded)."""
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    try:
        build(work)
        _write_record(work)
        try:
            os.rename(work, final)
            return True
        except OSError:
            if not os.path.isdir(final):
                raise
            shutil.rmtree(work, ignore_errors=True)
            return False
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _files(d: Path) -> list[str]:
    """Every path under ``d`` but the record, relative, sorted (directories not listed)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(d):
        rel = os.path.relpath(dirpath, d)
        out += [name if rel == "." else os.path.join(rel, name) for name in filenames + [
            n for n in dirnames if os.path.islink(os.path.join(dirpath, n))]]
    return sorted(f for f in out if f != RECORD)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _write_record(d: Path) -> None:
    files = {}
    for rel in _files(d):
        st = os.lstat(d / rel)
        if not stat.S_ISREG(st.st_mode):
            raise CacheError(f"{d / rel}: a build left something that is not a plain file; not cached")
        files[rel] = {"bytes": st.st_size, "sha256": _sha256(d / rel)}
    (d / RECORD).write_text(json.dumps({"layout": LAYOUT, "files": files}, indent=1, sort_keys=True))


def _record(entry_dir: Path) -> dict[str, dict]:
    """The files of ``entry_dir``'s record; CacheError when it has none or it cannot be read.
    FileNotFoundError when the entry itself is gone."""
    what = f"{entry_dir}: a cache entry"
    fix = f"remove it (rm -r {entry_dir}) and adaptc will rebuild it"
    try:
        text = (entry_dir / RECORD).read_text()
    except OSError:                     # none, or the entry is not even a directory
        if not os.path.lexists(entry_dir):
            raise FileNotFoundError(entry_dir) from None
        raise CacheError(f"{what} without adaptc's record ({RECORD}): adaptc did not build it, so it is not "
                         f"used; {fix}") from None
    try:
        files = json.loads(text)["files"]
        ok = isinstance(files, dict) and all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                                             and isinstance(v.get("bytes"), int) for v in files.values())
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise CacheError(f"{what} whose record ({RECORD}) is not one adaptc wrote; not used; {fix}")
    return files


def check_entry(entry_dir: Path) -> None:
    """Ensures every file of ``entry_dir`` is a plain file whose size and sha256 equal its record,
    and no file is missing or added; CacheError (naming the first file that differs and why)
    otherwise."""
    files = _record(entry_dir)
    have = _files(entry_dir)
    fix = f"remove the entry (rm -r {entry_dir}) and adaptc will rebuild it"
    added = sorted(set(have) - set(files))
    missing = sorted(set(files) - set(have))
    if added or missing:
        said = ", ".join([f"{a} added" for a in added[:3]] + [f"{m} missing" for m in missing[:3]])
        raise CacheError(f"{entry_dir}: this cache entry's files differ from adaptc's record ({said}): "
                         f"something else changed it; not used; {fix}")
    for rel in have:
        _check_file(entry_dir, rel, files[rel], fix)


def _check_file(entry_dir: Path, rel: str, want: dict, fix: str) -> None:
    path = entry_dir / rel
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise CacheError(f"{path}: not a plain file, but adaptc recorded one here: something else replaced it; "
                         f"not used; {fix}")
    got = _sha256(path)
    if st.st_size != want["bytes"] or got != want["sha256"]:
        raise CacheError(f"{path}: its content (sha256 {got[:16]}..., {st.st_size} bytes) differs from what "
                         f"adaptc built and recorded (sha256 {want['sha256'][:16]}..., {want['bytes']} bytes): "
                         f"something else changed it; not loaded; {fix}")


def verified(path) -> Path:
    """``path`` -- a file of a cache entry -- once its bytes are found equal to the entry's
    record: what to call right before the file is loaded or executed. Touches the entry.
    CacheError when ``path`` is not in a cache entry, not in its record, or differs from it."""
    path = Path(path)
    base = root()
    real = path.parent.resolve() / path.name
    try:
        parts = real.relative_to(base).parts
    except ValueError:
        parts = ()
    if len(parts) < 3:
        raise CacheError(f"{path}: not in an entry of adaptc's build cache ({base}); adaptc loads only what it "
                         "built and recorded there")
    entry_dir = base / parts[0] / parts[1]
    rel = os.path.join(*parts[2:])
    files = _record(entry_dir)
    fix = f"remove the entry (rm -r {entry_dir}) and adaptc will rebuild it"
    if rel not in files:
        raise CacheError(f"{path}: not in the record of its cache entry: adaptc did not build it; not loaded; {fix}")
    _check_file(entry_dir, rel, files[rel], fix)
    _touch(entry_dir)
    return real


def _touch(d: Path) -> None:
    try:
        os.utime(d)
    except FileNotFoundError:
        pass


def entries() -> list[tuple[float, int, Path]]:
    """Every entry as (last use, bytes on disk, directory), least recently used first."""
    out = []
    for kind in os.scandir(root()):
        if not kind.is_dir(follow_symlinks=False):
            continue
        for e in os.scandir(kind.path):
            if e.name.startswith(".") or not e.is_dir(follow_symlinks=False):
                continue
            try:
                used = e.stat(follow_symlinks=False).st_mtime
                size = sum(os.lstat(os.path.join(e.path, f)).st_size for f in [*_files(Path(e.path)), RECORD]
                           if os.path.lexists(os.path.join(e.path, f)))
            except FileNotFoundError:   # evicted meanwhile by another process
                continue
            out.append((used, size, Path(e.path)))
    return sorted(out)


def _eviction_due() -> bool:
    """Whether ``EVICT_INTERVAL_S`` have passed since any process last enforced the bound (the
    mtime of ``.last-evict`` in the root); if so, marks now. A scan of thousands of entries per
    build would cost more than the builds it keeps in check."""
    mark = root() / ".last-evict"
    try:
        if time.time() - os.stat(mark).st_mtime < EVICT_INTERVAL_S:
            return False
    except FileNotFoundError:
        pass
    mark.touch(mode=0o600)
    os.utime(mark)
    return True


def evict(keep: Path | None = None) -> list[Path]:
    """Remove least recently used entries until the cache holds at most ``max_bytes()``, sparing
    ``keep`` and entries used in the last ``GRACE_S`` seconds; also remove build and eviction
    directories older than ``STALE_S`` seconds. Returns the entries removed. An entry is renamed
    away before it is deleted, so a reader sees it whole or not at all."""
    now, limit = time.time(), max_bytes()
    for kind in os.scandir(root()):
        if kind.is_dir(follow_symlinks=False):
            for e in os.scandir(kind.path):
                if e.name.startswith((".build-", ".evict-")) and _age(e, now) > STALE_S:
                    shutil.rmtree(e.path, ignore_errors=True)
    listed = entries()
    total = sum(size for _, size, _ in listed)
    removed = []
    for used, size, d in listed:
        if total <= limit:
            break
        if d == keep or now - used < GRACE_S:
            continue
        gone = d.parent / f".evict-{d.name}-{secrets.token_hex(4)}"
        try:
            os.rename(d, gone)
        except FileNotFoundError:       # another process evicted it first
            continue
        shutil.rmtree(gone, ignore_errors=True)
        total -= size
        removed.append(d)
    return removed


def _age(e: os.DirEntry, now: float) -> float:
    try:
        return now - e.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return 0.0
