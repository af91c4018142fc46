"""The package surface a user types: ``import adaptc; adaptc.compile(...)``."""
import subprocess
import sys

import adaptc


def test_top_level_api():
    from adaptc import api, errors, loader

    assert adaptc.compile is api.compile
    assert adaptc.CompiledModel is api.CompiledModel
    assert adaptc.load is loader.load
    assert adaptc.ModelLoadError is errors.ModelLoadError
    assert set(adaptc.__all__) <= set(dir(adaptc)) | set(adaptc._LAZY)


def test_import_does_not_load_tvm():
    code = "import sys, adaptc; assert 'tvm' not in sys.modules, 'tvm imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_lists_the_operators_the_loader_accepts():
    """README's "Operators": the TFLite and ONNX paragraphs name every operator of
    loader.TFLITE_OPS / ONNX_OPS, with their counts; nothing more is claimed there."""
    import re
    from pathlib import Path

    from adaptc.loader import ONNX_OPS, TFLITE_OPS

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text[text.index("## Operators"):text.index("\n## ", text.index("## Operators") + 1)]
    for fmt, ops in (("TFLite", TFLITE_OPS), ("ONNX", ONNX_OPS)):
        para = section[section.index(f"**{fmt}** ("):]
        para = para[:para.index("\n\n")]
        assert int(re.match(rf"\*\*{fmt}\*\* \((\d+)\)", para).group(1)) == len(ops), fmt
        words = set(re.findall(r"[A-Za-z_0-9]+", para))
        assert not ops - words, f"README's {fmt} operators lack {sorted(ops - words)}"
    tflite_like = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|\b[A-Z]{3,}\b", section))
    not_accepted = tflite_like - TFLITE_OPS - {"ONNX", "TFLITE_OPS", "ONNX_OPS", "L2_NORMALIZATION", "LOG_SOFTMAX",
                                               "SVDF", "LSTM", "GRU"}
    assert not not_accepted, f"README names TFLite operators the loader does not accept: {sorted(not_accepted)}"
