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

from .errors import ToolchainError

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
    """``<prefix>_run(const T *input, U *output)`` from a built shared library."""

    def __init__(self, lib_path: Path, prefix: str):
        self.lib = ctypes.CDLL(str(lib_path))
        self.fn = getattr(self.lib, f"{prefix}_run")
        self.fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.fn.restype = ctypes.c_int

    def __call__(self, x: np.ndarray, out: np.ndarray) -> int:
        return int(self.fn(x.ctypes.data, out.ctypes.data))
