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
