"""Build generated C with the host compiler and call it through ctypes."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from adaptc.errors import ToolchainError

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
_CACHE = Path(os.environ.get("ADAPTC_CACHE", Path(tempfile.gettempdir()) / f"adaptc-host-{os.getuid()}"))


def host_cc() -> str:
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise ToolchainError(f"host C compiler {cc!r} not found (install gcc, or set CC)")
    return cc


def build_shared(files: dict[str, str], source: str) -> Path:
    """Compile ``source`` (one of ``files``) to a shared library, cached by content hash."""
    digest = hashlib.sha256("\0".join(f"{k}\0{files[k]}" for k in sorted(files)).encode()).hexdigest()[:20]
    out = _CACHE / digest / "libmodel.so"
    if out.exists():
        return out
    work = Path(tempfile.mkdtemp(prefix="build-", dir=_ensure(_CACHE)))
    try:
        for name, text in files.items():
            (work / name).write_text(text)
        cmd = [host_cc(), *CFLAGS, "-shared", "-fPIC", str(work / source), "-o", str(work / "libmodel.so"), "-lm"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise ToolchainError(f"host build of {source} failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / "libmodel.so", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _ensure(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return d


class HostModel:
    """``<prefix>_run(const T *input, U *output)`` from a built shared library -- or, for a model
    with exits (``result_dtype``: its result struct), ``<prefix>_run(input, level, &result)``."""

    def __init__(self, lib_path: Path, prefix: str, result_dtype=None):
        self.lib = ctypes.CDLL(str(lib_path))
        self.fn = getattr(self.lib, f"{prefix}_run")
        self.fn.argtypes = ([ctypes.c_void_p, ctypes.c_void_p] if result_dtype is None
                            else [ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p])
        self.fn.restype = ctypes.c_int

    def __call__(self, x: np.ndarray, out: np.ndarray) -> int:
        return int(self.fn(x.ctypes.data, out.ctypes.data))

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
