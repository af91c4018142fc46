"""Golden generated C for a small model: a refactor that changes the emitted code shows its diff here.

Update after an intended change:  ADAPTC_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py
"""
import os

import numpy as np
from test_onnx import _tiny_cnn

import adaptc.api as api
import paths

GOLDEN = paths.GOLDEN


def test_generated_c_matches_golden(tmp_path):
    """The model's C and the firmware project around it (report.json holds timings: not golden)."""
    model = _tiny_cnn(tmp_path / "tiny_cnn.onnx")
    cal = np.random.default_rng(2).standard_normal((16, 3, 16, 16)).astype(np.float32)
    m = api.compile(model, calibration=cal)
    out = m.export(tmp_path / "out")
    files = {p.name: p.read_text() for p in out.iterdir() if p.name != "report.json"}
    if os.environ.get("ADAPTC_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        for p in GOLDEN.iterdir():
            p.unlink()
        for name, text in files.items():
            (GOLDEN / name).write_text(text)
    for name, text in files.items():
        golden = (GOLDEN / name).read_text()
        assert text == golden, f"{name} differs from tests/golden/{name} (see this file's docstring)"
    assert sorted(files) == sorted(p.name for p in GOLDEN.iterdir())
