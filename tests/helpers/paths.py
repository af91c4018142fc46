"""Where the tests' files are: the committed test data, golden files, the C kernels."""
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
DATA = TESTS / "data"
GOLDEN = TESTS / "golden"
KERNELS = ROOT / "templates" / "kernels"
