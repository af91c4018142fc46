"""The reference kernels as one shared library for every kernel test module (kernel_harness)."""
import pytest

import kernel_harness as harness


@pytest.fixture(scope="session")
def lib(tmp_path_factory) -> harness.KernelLib:
    if harness.CC is None:
        pytest.skip("no C compiler on PATH")
    return harness.build_lib(tmp_path_factory.mktemp("kernels"))
