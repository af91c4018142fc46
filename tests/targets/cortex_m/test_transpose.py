"""transpose_s8 / transpose_f32 kernels against numpy.transpose, every 4-D permutation."""
import ctypes
import itertools
import subprocess
from pathlib import Path

import numpy as np
import pytest
import paths

KERNELS = paths.KERNELS
WRAPPER = """
void test_transpose_{s}(const int32_t *dims, const int32_t *perm, const {t} *in, {t} *out) {{
    transpose_params p;
    int32_t i;
    for (i = 0; i < 4; ++i) {{ p.in_dims[i] = dims[i]; p.perm[i] = perm[i]; }}
    transpose_{s}(&p, in, out);
}}
"""


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("transpose")
    src = (KERNELS / "common.h").read_text()
    for s, t in (("s8", "int8_t"), ("f32", "float")):
        src += (KERNELS / f"transpose_{s}.c").read_text() + WRAPPER.format(s=s, t=t)
    (d / "t.c").write_text(src)
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    str(d / "t.c"), "-o", str(d / "t.so")], check=True)
    return ctypes.CDLL(str(d / "t.so"))


@pytest.mark.parametrize("perm", list(itertools.permutations(range(4))))
@pytest.mark.parametrize("dtype", [np.int8, np.float32])
def test_transpose(lib, perm, dtype):
    shape = (2, 3, 4, 5)
    x = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    expected = np.ascontiguousarray(np.transpose(x, perm))
    out = np.zeros_like(expected)
    fn = lib.test_transpose_s8 if dtype == np.int8 else lib.test_transpose_f32
    fn(np.array(shape, np.int32).ctypes.data_as(ctypes.c_void_p), np.array(perm, np.int32).ctypes.data_as(ctypes.c_void_p),
       x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p))
    np.testing.assert_array_equal(out, expected)
