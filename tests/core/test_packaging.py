"""The wheel: pyproject.toml builds without a setuptools warning (no deprecated license table, no
folder that "would be ignored") and the wheel holds every file of the four source folders --
adaptc/ (adaptc/data too), passes/, targets/ (fitted tables too) and templates/ (C kernels,
firmware) -- where the installed package expects them."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from paths import ROOT

# source folder -> where pyproject.toml's package-dir installs it
FOLDERS = {"adaptc": "adaptc", "passes": "adaptc/passes", "targets": "adaptc/targets", "templates": "adaptc/templates"}
NOT_SOURCE = ("__pycache__", ".pyc", ".so", ".egg-info")
WARNINGS = ("SetuptoolsDeprecationWarning", "BuildBackendWarning", "DeprecationWarning", "would be ignored",
            "is deprecated")


def source_files() -> list[Path]:
    """Every file of the source folders, relative to the checkout (build outputs left out)."""
    return sorted(p.relative_to(ROOT) for folder in FOLDERS for p in (ROOT / folder).rglob("*")
                  if p.is_file() and not any(part.endswith(NOT_SOURCE) for part in p.relative_to(ROOT).parts))


def installed_name(path: Path) -> str:
    folder, *rest = path.parts
    return "/".join([FOLDERS[folder], *rest])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[set[str], str]:
    """(the files of the wheel built from a copy of the sources, the build's output)."""
    src = tmp_path_factory.mktemp("src")
    for rel in [Path("pyproject.toml"), Path("README.md"), *source_files()]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    out = src / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                        str(src), "-w", str(out)], capture_output=True, text=True, cwd=src)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob("adaptc-*.whl")
    with zipfile.ZipFile(whl) as z:
        return set(z.namelist()), r.stdout + r.stderr


def test_builds_without_warnings(wheel):
    _, log = wheel
    found = [line.strip() for line in log.splitlines() if any(w in line for w in WARNINGS)]
    assert not found, "\n".join(found)


def test_wheel_holds_every_source_file(wheel):
    names, _ = wheel
    expected = {installed_name(p) for p in source_files()}
    assert {n for n in expected if n.startswith("adaptc/templates/")}       # templates are there to check
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"
    extra = sorted(n for n in names - expected if not n.startswith("adaptc-"))   # (dist-info)
    assert not extra, f"in the wheel but not in the tree: {extra}"
