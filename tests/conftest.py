"""Test helpers (tests/helpers/: TFLite flatbuffer builders, numpy references of the C kernels,
small models) import by name from every test directory."""
import sys
from pathlib import Path

for _d in (Path(__file__).parent / "helpers", Path(__file__).parent):
    if str(_d) not in sys.path:
        sys.path.insert(0, str(_d))
