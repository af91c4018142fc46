"""adaptc's build cache (adaptc/cache.py) cannot be made to run a library adaptc did not build.

* A library planted in the cache -- over a built one, as an entry made before the build, or
  outside the cache -- is never loaded: its constructor would create a marker file, and the
  marker never appears; the CacheError says why.
* Any other change to an entry (a file added, removed, replaced by a symlink, a forged record)
  is refused; so are a tampered QEMU plugin and a tampered firmware ELF.
* A cache directory that is not private -- another owner (``os.getuid`` patched), mode 0777 or
  0750, not a directory, a symlink to a public directory -- is refused before any use, and the
  message names it, its owner and mode, and the fix. A new one is created 0700 whatever the umask.
* The size bound evicts least recently used entries (a tiny bound, explicit use times), spares
  the entry just built and entries in use, and removes build directories of dead processes.
* Two builds of the same entry at the same moment (held at a barrier) both succeed and leave one
  whole entry.

Every test points ``ADAPTC_CACHE`` at its own tmp_path: the user's cache is never touched.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from adaptc import cache
from adaptc.errors import AdaptcError, CacheError
from adaptc.targets.cortex_m import host

TINY = {"tiny.h": "#include <stdint.h>\nint tiny_run(const int8_t *input, int8_t *output);\n",
        "tiny.c": '#include "tiny.h"\nint tiny_run(const int8_t *input, int8_t *output) {\n'
                  "  output[0] = (int8_t)(input[0] + 1);\n  return 0;\n}\n"}


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """An empty cache of this test's own."""
    d = tmp_path / "cache"
    monkeypatch.setenv(cache.ROOT_ENV, str(d))
    monkeypatch.delenv(cache.MAX_MB_ENV, raising=False)
    monkeypatch.delenv(host.SANITIZE_ENV, raising=False)
    monkeypatch.setattr(cache, "EVICT_INTERVAL_S", 0.0)                # the bound after every build
    return d


@pytest.fixture
def planted(tmp_path) -> tuple[Path, Path]:
    """(library, marker): a shared library with ``tiny_run`` whose constructor creates ``marker``."""
    marker = tmp_path / "PLANTED-LIBRARY-RAN"
    (tmp_path / "planted.c").write_text(
        "#include <stdio.h>\n#include <stdint.h>\n"
        f'__attribute__((constructor)) static void planted(void) {{ FILE *f = fopen("{marker}", "w");'
        " if (f) fclose(f); }\n"
        "int tiny_run(const int8_t *input, int8_t *output) { (void)input; output[0] = 99; return 0; }\n")
    lib = tmp_path / "planted.so"
    subprocess.run([host.host_cc(), "-shared", "-fPIC", "-o", str(lib), str(tmp_path / "planted.c")], check=True)
    return lib, marker


def test_the_planted_library_runs_its_constructor_when_loaded(planted):
    lib, marker = planted            # what the tests below show does not happen
    subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(lib)!r})"], check=True)
    assert marker.exists()


def test_a_built_library_loads_and_runs(root):
    path = host.build_shared(TINY, "tiny.c")
    assert path.is_relative_to(root) and path.parent.parent == root / "host"
    fn = host.load_library(path).tiny_run
    x, out = (ctypes.c_int8 * 1)(41), (ctypes.c_int8 * 1)(0)
    assert fn(x, out) == 0 and out[0] == 42
    assert host.build_shared(TINY, "tiny.c") == path                   # cached
    assert sorted(p.name for p in path.parent.iterdir()) == [cache.RECORD, "libmodel.so"]


def test_a_library_planted_over_a_built_one_is_not_loaded(root, planted):
    lib, marker = planted
    path = host.build_shared(TINY, "tiny.c")
    shutil.copy(lib, path)
    with pytest.raises(CacheError, match=r"libmodel.so: its content .* differs from what adaptc built") as e:
        host.HostModel(path, "tiny")
    assert "rm -r" in str(e.value)
    with pytest.raises(CacheError, match="differs from what adaptc built"):
        host.build_shared(TINY, "tiny.c")                              # refused, not rebuilt over
    assert not marker.exists()


def test_an_entry_planted_before_the_build_is_not_loaded(root, planted):
    lib, marker = planted
    path = host.build_shared(TINY, "tiny.c")                           # where the entry goes
    shutil.rmtree(path.parent)
    path.parent.mkdir()
    shutil.copy(lib, path)
    with pytest.raises(CacheError, match="without adaptc's record .*adaptc did not build it"):
        host.build_shared(TINY, "tiny.c")
    with pytest.raises(CacheError, match="without adaptc's record"):
        host.HostModel(path, "tiny")
    assert not marker.exists()


def test_a_library_outside_the_cache_is_not_loaded(root, planted):
    lib, marker = planted
    with pytest.raises(CacheError, match="not in an entry of adaptc's build cache"):
        host.HostModel(lib, "tiny")
    assert not marker.exists()


def _entry(name: str, size: int = 1000, files: tuple[str, ...] = ("a.bin",)) -> Path:
    def build(work: Path) -> None:
        for f in files:
            (work / f).write_bytes(name.encode() * (size // len(name)))
    return cache.entry("t", cache.key(name), build)


def _forge_record(d: Path) -> None:
    record = json.loads((d / cache.RECORD).read_text())
    record["files"]["a.bin"]["sha256"] = "0" * 64
    (d / cache.RECORD).write_text(json.dumps(record))


def _garbage_record(d: Path) -> None:
    (d / cache.RECORD).write_text("{not json")


def _remove_record(d: Path) -> None:
    (d / cache.RECORD).unlink()


def _add_file(d: Path) -> None:
    (d / "extra.so").write_bytes(b"\x7fELF")


def _remove_file(d: Path) -> None:
    (d / "b.bin").unlink()


def _symlink_same_bytes(d: Path) -> None:
    elsewhere = d.parent / "same-bytes"
    shutil.copy(d / "a.bin", elsewhere)
    (d / "a.bin").unlink()
    (d / "a.bin").symlink_to(elsewhere)


def _append(d: Path) -> None:
    with open(d / "a.bin", "ab") as f:
        f.write(b"!")


@pytest.mark.parametrize("tamper, says", [
    (_append, "differs from what adaptc built"), (_forge_record, "differs from what adaptc built"),
    (_garbage_record, "record .* is not one adaptc wrote"), (_remove_record, "without adaptc's record"),
    (_add_file, "extra.so added"), (_remove_file, "b.bin missing"),
    (_symlink_same_bytes, "not a plain file")])
def test_a_changed_entry_is_refused(root, tamper, says):
    d = _entry("x", files=("a.bin", "b.bin"))
    tamper(d)
    with pytest.raises(CacheError, match=says):
        _entry("x", files=("a.bin", "b.bin"))


def test_a_file_planted_where_an_entry_goes_is_refused(root):
    d = _entry("x")
    shutil.rmtree(d)
    d.write_bytes(b"\x7fELF")
    with pytest.raises(CacheError, match="without adaptc's record"):
        _entry("x")


def test_verified_checks_the_file_itself(root):
    d = _entry("x")
    assert cache.verified(d / "a.bin") == d / "a.bin"
    _append(d)
    with pytest.raises(CacheError, match="a.bin: its content"):
        cache.verified(d / "a.bin")
    with pytest.raises(CacheError, match="not in the record"):
        cache.verified(d / cache.RECORD)


# ------------------------------------------------------------------- the cache directory itself

def test_a_new_cache_is_private_whatever_the_umask(root):
    old = os.umask(0)
    try:
        assert cache.root() == root.resolve()
    finally:
        os.umask(old)
    st = os.stat(root)
    assert (st.st_mode & 0o777, st.st_uid) == (0o700, os.getuid())


def test_the_default_cache_is_under_xdg_cache_home_or_home(tmp_path, monkeypatch):
    monkeypatch.delenv(cache.ROOT_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.root() == (tmp_path / "xdg" / "adaptc").resolve()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.root() == (tmp_path / "home" / ".cache" / "adaptc").resolve()


@pytest.mark.parametrize("mode", [0o777, 0o750, 0o701])
def test_a_cache_others_can_enter_is_refused(root, planted, mode):
    lib, marker = planted
    path = host.build_shared(TINY, "tiny.c")
    os.chmod(root, mode)
    with pytest.raises(CacheError) as e:
        host.build_shared(TINY, "tiny.c")
    msg = str(e.value)
    assert str(root.resolve()) in msg and f"mode {mode:04o}" in msg and f"owner uid {os.getuid()}" in msg
    assert "chmod 700" in msg and "ADAPTC_CACHE" in msg and "Remove it" in msg
    with pytest.raises(CacheError, match="lets group or others in"):
        host.HostModel(path, "tiny")                                   # checked before loading too
    os.chmod(root, 0o700)
    host.HostModel(path, "tiny")


def test_a_cache_owned_by_another_user_is_refused(root, monkeypatch):
    cache.root()
    uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: uid + 1)
    with pytest.raises(CacheError) as e:
        host.build_shared(TINY, "tiny.c")
    msg = str(e.value)
    assert f"is owned by uid {uid}, not by you (uid {uid + 1})" in msg and str(root.resolve()) in msg
    assert "mode 0700" in msg and "Remove it, or set ADAPTC_CACHE" in msg and "chmod" not in msg


def test_a_cache_that_is_a_file_is_refused(root):
    root.write_text("")
    os.chmod(root, 0o600)
    with pytest.raises(CacheError, match="is not a directory"):
        cache.root()


def test_a_cache_that_cannot_be_created_is_refused(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(cache.ROOT_ENV, str(tmp_path / "file" / "cache"))
    with pytest.raises(CacheError, match="cannot create adaptc's build cache .*set ADAPTC_CACHE"):
        cache.root()


def test_a_symlink_counts_as_its_target(tmp_path, monkeypatch):
    private, public = tmp_path / "private", tmp_path / "public"
    private.mkdir(mode=0o700)
    public.mkdir()
    os.chmod(public, 0o777)
    monkeypatch.setenv(cache.ROOT_ENV, str(tmp_path / "link"))
    (tmp_path / "link").symlink_to(private)
    assert cache.root() == private.resolve()
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to(public)
    with pytest.raises(CacheError, match=f"{public.resolve()}: refusing .*mode 0777"):
        cache.root()


def test_cache_error_is_an_adaptc_error():
    assert issubclass(CacheError, AdaptcError)


# ------------------------------------------------------------------------------------ the bound

def test_least_recently_used_entries_go_first(root, monkeypatch):
    monkeypatch.setattr(cache, "GRACE_S", 0.0)
    monkeypatch.setenv(cache.MAX_MB_ENV, "0.1")                       # 104,857 bytes: two 40 kB entries
    now = time.time()
    a = _entry("a", 40_000)
    os.utime(a, (now - 300, now - 300))
    b = _entry("b", 40_000)
    os.utime(b, (now - 200, now - 200))
    assert _entry("a", 40_000) == a                                    # used: now the most recent
    c = _entry("c", 40_000)                                            # over the bound: b goes
    assert (a.exists(), b.exists(), c.exists()) == (True, False, True)
    assert sum(size for _, size, _ in cache.entries()) <= cache.max_bytes()
    assert [d for _, _, d in cache.entries()] == [a, c]


def test_the_entry_just_built_and_entries_in_use_stay(root, monkeypatch):
    monkeypatch.setenv(cache.MAX_MB_ENV, "0")
    a = _entry("a")
    b = _entry("b")                                                    # a was used just now (GRACE_S)
    assert a.exists() and b.exists()
    monkeypatch.setattr(cache, "GRACE_S", 0.0)
    c = _entry("c")
    assert [d for _, _, d in cache.entries()] == [c]


def test_the_bound_is_enforced_at_most_once_an_interval(root, monkeypatch):
    monkeypatch.setattr(cache, "GRACE_S", 0.0)
    monkeypatch.setenv(cache.MAX_MB_ENV, "0")
    monkeypatch.setattr(cache, "EVICT_INTERVAL_S", 3600.0)
    a = _entry("a")                                                    # the first build enforces it
    b = _entry("b")                                                    # within the interval: kept
    assert a.exists() and b.exists()
    mark = root / ".last-evict"
    then = time.time() - 3601
    os.utime(mark, (then, then))
    c = _entry("c")                                                    # the interval passed
    assert [d for _, _, d in cache.entries()] == [c]


def test_build_directories_of_dead_processes_go(root):
    _entry("a")
    old, fresh = root / "t" / ".build-old", root / "t" / ".build-fresh"
    old.mkdir()
    fresh.mkdir()
    then = time.time() - cache.STALE_S - 10
    os.utime(old, (then, then))
    cache.evict()
    assert not old.exists() and fresh.exists()


@pytest.mark.parametrize("text", ["lots", "-1", "nan"])
def test_a_bad_bound_is_refused(root, monkeypatch, text):
    monkeypatch.setenv(cache.MAX_MB_ENV, text)
    with pytest.raises(CacheError, match="ADAPTC_CACHE_MAX_MB"):
        cache.max_bytes()


def test_keys_do_not_run_parts_together():
    assert cache.key("ab", "c") != cache.key("a", "bc")
    assert cache.key("a\0b") != cache.key("a", "b")


# -------------------------------------------------------------------------------- concurrency

def test_two_builds_of_one_entry_at_once_leave_one_whole_entry(root):
    barrier = threading.Barrier(2, timeout=30)
    got, errors = {}, []

    def build_as(name):
        def build(work: Path) -> None:
            (work / "lib.so").write_bytes(name.encode() * 1000)
            barrier.wait()                                             # both builds done, neither renamed

        try:
            got[name] = cache.entry("race", "same", build)
        except BaseException as e:                                     # reported below
            errors.append(e)

    threads = [threading.Thread(target=build_as, args=(n,)) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert got["first"] == got["second"] == root.resolve() / "race" / "same"
    assert (got["first"] / "lib.so").read_bytes() in (b"first" * 1000, b"second" * 1000)
    cache.check_entry(got["first"])
    assert sorted(p.name for p in (root / "race").iterdir()) == ["same"]  # the loser's copy is gone


def test_concurrent_host_builds_agree(root):
    paths, errors = [], []

    def build():
        try:
            paths.append(host.build_shared(TINY, "tiny.c"))
        except BaseException as e:                                     # reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(paths)) == 1
    host.HostModel(paths[0], "tiny")
    assert sorted(p.name for p in paths[0].parent.parent.iterdir()) == [paths[0].parent.name]


# ------------------------------------------------------------------ what QEMU loads and runs

def test_a_tampered_qemu_plugin_is_refused(root):
    from adaptc.targets.cortex_m import emulator

    so = emulator.plugin()
    assert so.is_relative_to(root.resolve())
    so.write_bytes(so.read_bytes() + b"\0")
    with pytest.raises(CacheError, match="armstat.so: its content"):
        emulator.plugin()


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="needs qemu-system-arm")
def test_a_tampered_firmware_is_not_run(root, tmp_path):
    from adaptc.targets.cortex_m import CORES, emulator

    elf = cache.entry("arm", cache.key("fake"), lambda w: (w / "m.elf").write_bytes(b"\x7fELF" + bytes(60))) / "m.elf"
    elf.write_bytes(b"\x7fELF" + bytes(61))
    with pytest.raises(CacheError, match="m.elf: its content"):
        emulator.emulate(CORES[0], elf, {}, [], tmp_path)
