"""Build generated C with the host compiler and call it through ctypes.

The shared library is built into adaptc's build cache (adaptc.cache: a private per-user
directory, each entry checked against the record adaptc wrote) and ``load_library`` checks its
bytes against that record right before ``ctypes`` loads it: a library that adaptc did not build
never runs in the process.

``ADAPTC_SANITIZE=1`` builds it with AddressSanitizer and UndefinedBehaviorSanitizer
(``SANITIZE_FLAGS``; a separate cache entry): a bad access or undefined behaviour in the
generated C stops the process with a report. The ASan runtime must then be loaded before
Python starts -- ``sanitize_env()`` gives the variables (LD_PRELOAD of libasan and libstdc++,
ASAN_OPTIONS=detect_leaks=0); ``build_shared`` refuses to build otherwise, as loading the library
would abort the process.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from adaptc import cache
from adaptc.errors import ToolchainError

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
SANITIZE_ENV = "ADAPTC_SANITIZE"
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g", "-O1")


def host_cc() -> str:
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise ToolchainError(f"host C compiler {cc!r} not found (install gcc, or set CC)")
    return cc


def sanitize() -> bool:
    """Whether ``$ADAPTC_SANITIZE`` asks for sanitized host builds (set, and not "0")."""
    return os.environ.get(SANITIZE_ENV, "0").strip() not in ("", "0")


def host_cflags() -> tuple[str, ...]:
    """The host build's flags: ``CFLAGS``, and ``SANITIZE_FLAGS`` after them (their -O1 wins)
    when ``sanitize()``."""
    return CFLAGS + SANITIZE_FLAGS if sanitize() else CFLAGS


def sanitize_env() -> dict[str, str]:
    """The environment a Python process needs to load a sanitized host build: the ASan runtime
    preloaded (with libstdc++, so that C++ exceptions thrown inside TVM pass ASan's
    interceptor), leak detection off (the interpreter does not free everything at exit),
    ``ADAPTC_SANITIZE=1``."""
    cc = host_cc()
    libs = [subprocess.run([cc, f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
            for lib in ("libasan.so", "libstdc++.so")]
    return {"LD_PRELOAD": " ".join(libs), "ASAN_OPTIONS": "detect_leaks=0", SANITIZE_ENV: "1"}


def asan_loaded() -> bool:
    """Whether the AddressSanitizer runtime is loaded in this process."""
    return hasattr(ctypes.CDLL(None), "__asan_init")


def build_shared(files: dict[str, str], source: str) -> Path:
    """Compile ``source`` (one of ``files``) to a shared library in the build cache, keyed by the
    compiler, its flags and every file: the path of a library adaptc built and recorded (a
    cached one after checking it against its record). ToolchainError when the compiler fails,
    or when sanitizing without the ASan runtime loaded; CacheError when the cache cannot be
    trusted."""
    cc, flags = host_cc(), host_cflags()
    if sanitize() and not asan_loaded():
        env = sanitize_env()
        raise ToolchainError(f"{SANITIZE_ENV}=1 builds the generated C with AddressSanitizer, whose runtime must be "
                             f"loaded before Python starts; run Python with LD_PRELOAD=\"{env['LD_PRELOAD']}\" "
                             f"ASAN_OPTIONS={env['ASAN_OPTIONS']} (or unset {SANITIZE_ENV})")

    def build(work: Path) -> None:
        for name, text in files.items():
            (work / name).write_text(text)
        cmd = [cc, *flags, "-shared", "-fPIC", str(work / source), "-o", str(work / "libmodel.so"), "-lm"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise ToolchainError(f"host build of {source} failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
        if not sanitize():              # a sanitizer's report points into the sources: keep them
            for name in files:
                (work / name).unlink()

    parts = [cc, *flags] + [f"{name}\0{files[name]}" for name in sorted(files)]
    return cache.entry("host", cache.key(*parts), build) / "libmodel.so"


def load_library(path: Path) -> ctypes.CDLL:
    """The shared library at ``path`` -- a file of the build cache -- loaded with ctypes right
    after its bytes are checked against adaptc's record of it (CacheError if they differ, or if
    ``path`` is not one adaptc built)."""
    return ctypes.CDLL(str(cache.verified(path)))


class HostModel:
    """``<prefix>_run(const T *input, U *output)`` from a built shared library -- or, for a model
    with exits (``result_dtype``: its result struct), ``<prefix>_run(input, level, &result)``."""

    def __init__(self, lib_path: Path, prefix: str, result_dtype=None):
        self.lib = load_library(lib_path)
        self.fn = getattr(self.lib, f"{prefix}_run")
        if result_dtype is not None:
            self.fn.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p]
        self.fn.restype = ctypes.c_int

    def __call__(self, x: np.ndarray, *outs: np.ndarray) -> int:
        """``<prefix>_run(input, output0, output1, ...)``: one buffer per model output."""
        return int(self.fn(ctypes.c_void_p(x.ctypes.data), *(ctypes.c_void_p(o.ctypes.data) for o in outs)))

    def run_level(self, x: np.ndarray, level: int, result: np.ndarray) -> int:
        return int(self.fn(x.ctypes.data, int(level), result.ctypes.data))

    def controller_init(self, prefix: str, state: np.ndarray) -> None:
        """``<prefix>_controller_init(&state)`` (``state``: the controller struct as a 0-d array)."""
        fn = getattr(self.lib, f"{prefix}_controller_init")
        fn.argtypes, fn.restype = [ctypes.c_void_p], None
        fn(state.ctypes.data)

    def controller_run(self, prefix: str, state: np.ndarray, x: np.ndarray, result: np.ndarray) -> int:
        fn = getattr(self.lib, f"{prefix}_controller_run")
        fn.argtypes, fn.restype = [ctypes.c_void_p] * 3, ctypes.c_int
        return int(fn(state.ctypes.data, x.ctypes.data, result.ctypes.data))
