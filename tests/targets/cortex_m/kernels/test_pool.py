"""AVERAGE_POOL_2D / MAX_POOL_2D (targets/cortex_m/kernels/pool.py): avg_pool_s8, max_pool_s8,
avg_pool_f32, max_pool_f32 called directly against the NumPy references (int8 bit-exact, float32
to ~1e-5) and against TensorFlow Lite Micro; the int8 cases, and cases for the DSP kernels' paths
(windows of more than 256 elements, windows spanning the whole width, channels % 4, extreme
inputs), as one-step programs through every variant of the family (host and emulated cores)
against the same references."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as harness
import kernel_programs as programs
import kernel_ref as ref
from adaptc.targets.cortex_m.kernels.loops import axis_taps
from adaptc.targets.cortex_m.kernels.pool import avg_pool_dsp_loops, max_pool_dsp_loops, pool_runs
from kernel_cases import F_ATOL, F_RTOL, POOL_REF_KEYS, geometry, pool_case, ref_kwargs
from kernel_harness import family_variants, seed
from kernel_programs import needs_arm
from tflm_harness import ACT, f32, needs_tflm, tfl, tflm_act_range, tflm_run

pytestmark = harness.needs_cc

FAMILY = "pool"

POOL_CASES = [
    dict(id="2x2_s2_valid", H=8, W=8, K=(2, 2), S=(2, 2)),
    dict(id="3x3_s2_same_even", H=8, W=8, K=(3, 3), S=(2, 2), padding="same"),
    dict(id="3x3_s1_same", H=5, W=6, K=(3, 3), S=(1, 1), padding="same"),
    dict(id="k4_same_asymmetric", H=5, W=7, K=(4, 4), S=(1, 1), padding="same"),
    dict(id="nonsquare_3x2_s_2x1", H=7, W=6, K=(3, 2), S=(2, 1), padding="same"),
    dict(id="global", H=5, W=5, K=(5, 5), S=(5, 5)),
    dict(id="batch2", N=2, H=6, W=6, K=(3, 3), S=(2, 2), padding="same"),
    dict(id="act_narrow", H=6, W=6, K=(2, 2), S=(2, 2), act=(-50, 60)),
    dict(id="1x1", H=3, W=4, K=(1, 1), S=(1, 1)),
]

# the DSP kernels' paths (avg_pool_s8_dsp.c, max_pool_s8_dsp.c): four channels a word and the
# channels % 4 one at a time; a window that spans the input's width as one run; blocks of at most
# 256 words before the int16 lanes widen (runs of len <= 256, 256 // len at a time; longer runs
# 256 words at a time); ``fill``: every input that value (the lanes' bound: 256 * -128 = -2^15)
PROGRAM_CASES = POOL_CASES + [
    dict(id="global_20x20_c6", H=20, W=20, C=6, K=(20, 20), S=(20, 20)),       # one run of 400: 2 blocks
    dict(id="global_20x20_c4_min", H=20, W=20, C=4, K=(20, 20), S=(20, 20), fill=-128),
    dict(id="global_20x20_c4_max", H=20, W=20, C=4, K=(20, 20), S=(20, 20), fill=127),
    dict(id="global_16x16_c8_min", H=16, W=16, C=8, K=(16, 16), S=(16, 16), fill=-128),   # exactly 256
    dict(id="global_32x32_c4", H=32, W=32, C=4, K=(32, 32), S=(32, 32)),       # 4 blocks
    dict(id="global_32x32_c4_min", H=32, W=32, C=4, K=(32, 32), S=(32, 32), fill=-128),
    dict(id="16x16_of_16x18_min", H=16, W=18, C=4, K=(16, 16), S=(1, 2), fill=-128),   # 16 runs, 1 block
    dict(id="20x20_of_21x23_s1x3", H=21, W=23, C=5, K=(20, 20), S=(1, 3)),    # runs of 20: 12 a block
    dict(id="20x20_of_20x24_min", H=20, W=24, C=4, K=(20, 20), S=(1, 4), fill=-128),
    dict(id="rows_of_290_same", H=3, W=300, C=5, K=(2, 290), S=(1, 7), padding="same"),   # runs > 256
    dict(id="whole_width_3x8_s2", H=9, W=8, C=8, K=(3, 8), S=(2, 1)),         # one run, not global
    dict(id="whole_width_same", H=7, W=6, C=9, K=(3, 7), S=(2, 1), padding="same"),
    dict(id="c8_3x3_s2_same", H=9, W=9, C=8, K=(3, 3), S=(2, 2), padding="same"),
    dict(id="c7_2x2_s2", H=6, W=8, C=7, K=(2, 2), S=(2, 2)),
    dict(id="c3_3x3_s1_same", H=5, W=5, C=3, K=(3, 3), S=(1, 1), padding="same"),
    dict(id="c1_3x3_s2", H=7, W=7, C=1, K=(3, 3), S=(2, 2)),
    dict(id="c12_batch3_act", N=3, H=6, W=7, C=12, K=(3, 3), S=(2, 2), padding="same", act=(-20, 90)),
    dict(id="c15_act_relu6_like", H=6, W=6, C=15, K=(2, 2), S=(1, 1), act=(-128, 10)),   # octet, quad, 3
    dict(id="c4_batch2_global_same_valued", N=2, H=5, W=5, C=4, K=(5, 5), S=(5, 5), fill=127, act=(-5, 100)),
]

HOST = programs.host_params(FAMILY)
EMULATED = programs.emulated_params()


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c["id"])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_pool_s8(lib, case, op):
    params, x = pool_case(case, seed(case["id"]), np.int8)
    shape = (params["batches"], params["out_h"], params["out_w"], params["channels"])
    got = lib.run(f"{op}_pool_s8", params, shape, input=x)
    want = getattr(ref, f"{op}_pool_s8_ref")(x, **ref_kwargs(params, POOL_REF_KEYS))
    np.testing.assert_array_equal(got, want)


def test_avg_pool_s8_rounding(lib):
    """Ties round away from zero; negative sums use the negative branch."""
    # 1x2 windows over pairs: sums -3, -1, 0, 1, 3, 255, -256 with count 2
    pairs = np.array([[-2, -1], [-1, 0], [0, 0], [1, 0], [1, 2], [127, 127], [-128, -128],
                      [-128, 127], [5, -6]], dtype=np.int8)
    x = pairs.reshape(1, pairs.shape[0], 2, 1)
    params = dict(batches=1, in_h=pairs.shape[0], in_w=2, channels=1, out_h=pairs.shape[0],
                  out_w=1, k_h=1, k_w=2, stride_h=1, stride_w=2, pad_top=0, pad_left=0,
                  act_min=-128, act_max=127)
    got = lib.run("avg_pool_s8", params, (1, pairs.shape[0], 1, 1), input=x).ravel()
    np.testing.assert_array_equal(got, [-2, -1, 0, 1, 2, 127, -128, -1, -1])


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c["id"])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_pool_f32(lib, case, op):
    params, x = pool_case(case, seed(case["id"]), np.float32)
    shape = (params["batches"], params["out_h"], params["out_w"], params["channels"])
    got = lib.run(f"{op}_pool_f32", params, shape, input=x)
    want = getattr(ref, f"{op}_pool_f32_ref")(x, **ref_kwargs(params, POOL_REF_KEYS))
    np.testing.assert_allclose(got, want, rtol=F_RTOL, atol=F_ATOL)


@needs_tflm
@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("H,W,K,S,padding,act", [(8, 8, (3, 3), (2, 2), "SAME", "NONE"),
                                                 (7, 6, (2, 3), (2, 1), "SAME", "RELU6"),
                                                 (6, 6, (2, 2), (2, 2), "VALID", "RELU"),
                                                 (5, 7, (4, 4), (1, 1), "SAME", "NONE")])
def test_pool_matches_tflite_micro(lib, op, H, W, K, S, padding, act):
    rng = np.random.default_rng(H * 10 + W)
    N, C, scale, zp = 2, 3, f32(0.03), -9
    x = rng.integers(-128, 128, size=(N, H, W, C)).astype(np.int8)
    same = padding == "SAME"
    out_h, pad_top = geometry(H, K[0], S[0], 1, padding.lower())
    out_w, pad_left = geometry(W, K[1], S[1], 1, padding.lower())
    opts = tfl.Pool2DOptionsT(padding=tfl.Padding.SAME if same else tfl.Padding.VALID,
                              strideW=S[1], strideH=S[0], filterWidth=K[1], filterHeight=K[0],
                              fusedActivationFunction=ACT[act])
    out_shape = (N, out_h, out_w, C)
    want = tflm_run(getattr(tfl.BuiltinOperator, op),
                    [((N, H, W, C), tfl.TensorType.INT8, ([scale], [zp]), False)], out_shape,
                    ([scale], [zp]), tfl.BuiltinOptions.Pool2DOptions, opts, [x])
    act_min, act_max = tflm_act_range(act, scale, zp)
    params = dict(batches=N, in_h=H, in_w=W, channels=C, out_h=out_h, out_w=out_w, k_h=K[0],
                  k_w=K[1], stride_h=S[0], stride_w=S[1], pad_top=pad_top, pad_left=pad_left,
                  act_min=act_min, act_max=act_max)
    kernel = "avg_pool_s8" if op == "AVERAGE_POOL_2D" else "max_pool_s8"
    got = lib.run(kernel, params, out_shape, input=x)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------- every variant

def pool_program(case: dict, op: str, x: np.ndarray | None = None):
    """(Program, input, expected output, supported variants) of an int8 pooling case ("avg" /
    "max"; the input ``x`` or the case's), the expected output from the NumPy reference of
    TFLite's reference kernel."""
    params, drawn = pool_case(case, seed(case["id"]), np.int8)
    x = drawn if x is None else x
    if "fill" in case:
        x = np.full_like(x, case["fill"])
    want = getattr(ref, f"{op}_pool_s8_ref")(x, **ref_kwargs(params, POOL_REF_KEYS))
    attrs = {"pool_size": [params["k_h"], params["k_w"]], "strides": [params["stride_h"], params["stride_w"]],
             "padding": [params["pad_top"], params["pad_left"], 0, 0], "channels": params["channels"],
             "act_min": params["act_min"], "act_max": params["act_max"]}
    consts = {}
    if op == "avg":          # the in-bounds count of each window (the Relax composite's operand)
        ty = axis_taps(params["in_h"], params["out_h"], params["k_h"], params["stride_h"], 1, params["pad_top"])
        tx = axis_taps(params["in_w"], params["out_w"], params["k_w"], params["stride_w"], 1, params["pad_left"])
        consts["counts"] = (ty[:, None] * tx[None, :]).astype(np.int32)[:, :, None]
    prog = programs.one_step_program(f"adaptc.q{op}_pool2d", attrs, consts, [x.shape], want.shape)
    return prog, x, want, set(family_variants(FAMILY))


def test_program_cases_reach_the_paths():
    """The program cases hold windows of more than 256 elements as one run and as rows, runs
    longer than 256, lanes at their bound, whole-width windows that are not global, every
    channels % 4, narrowed ranges, batches."""
    seen = set()
    for case in PROGRAM_CASES:
        step = pool_program(case, "avg")[0].steps[0]
        runs, length = pool_runs(step)
        f = avg_pool_dsp_loops(step)
        seen |= {("channels % 4", case.get("C", 5) % 4)}
        if f["blocks"] > f["groups"]:
            seen.add("one run > 256" if (runs == 1).all() else "rows > 256")
        if (length > 256).any():
            seen.add("runs > 256")
        if case.get("fill") == -128 and ((runs * length) % 256 == 0).all():
            seen.add("lanes at -2^15")
        if ((runs == 1) & (length > step.attrs["pool_size"][1])).any() and step.out_shape[1] > 1:
            seen.add("whole width, not global")
        if "act" in case:
            seen.add("narrow")
        if case.get("N", 1) > 1:
            seen.add("batch")
    assert seen >= {("channels % 4", k) for k in range(4)} | {"one run > 256", "rows > 256", "runs > 256",
                                                             "lanes at -2^15", "whole width, not global",
                                                             "narrow", "batch"}, seen


def test_dsp_loop_counts_by_hand():
    """The DSP kernels' features, counted by hand from their C loops."""
    # global 20x20, 14 channels: an octet, a quad, 2 one at a time; one run of 400 words in two
    # blocks (256 + 144), each an assembly call of one run
    step = pool_program(dict(id="g", H=20, W=20, C=14, K=(20, 20), S=(20, 20)), "avg")[0].steps[0]
    assert avg_pool_dsp_loops(step) == dict(
        call=1, rows=1, pixels=1, groups=2, octet_elements=400, quad_elements=400, tail_outputs=2, tail_runs=2,
        tail_elements=800, outputs=12, blocks=4, group_runs=4, long_runs=2)
    # 3x3 / 2 SAME on 5x6 (3x3 outputs, padding top 1, left 0), 8 channels: one octet a pixel;
    # in-bounds rows per output row 2, 3, 2, columns per output column 3, 3, 2: a run a row, one
    # block a pixel
    step = pool_program(dict(id="s", H=5, W=6, C=8, K=(3, 3), S=(2, 2), padding="same"), "max")[0].steps[0]
    ty, tx = [2, 3, 2], [3, 3, 2]
    assert max_pool_dsp_loops(step) == dict(
        call=1, rows=3, pixels=9, groups=9, octet_elements=sum(ty) * sum(tx), quad_elements=0, tail_outputs=0,
        tail_runs=0, tail_elements=0, octets=9, group_runs=3 * sum(ty))
    f = avg_pool_dsp_loops(pool_program(dict(id="s", H=5, W=6, C=8, K=(3, 3), S=(2, 2), padding="same"),
                                        "avg")[0].steps[0])
    assert (f["blocks"], f["group_runs"], f["long_runs"], f["outputs"]) == (9, 3 * sum(ty), 0, 72)
    # a 2x2 window over the whole width of a 4x2 map, 5 channels: one run of 4 words a pixel
    f = max_pool_dsp_loops(pool_program(dict(id="w", H=4, W=2, C=5, K=(2, 2), S=(2, 2)), "max")[0].steps[0])
    assert (f["groups"], f["group_runs"], f["quad_elements"], f["tail_runs"], f["tail_elements"]) == (2, 2, 8, 2, 8)


@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("op", ["avg", "max"])
@pytest.mark.parametrize("case", PROGRAM_CASES, ids=lambda c: c["id"])
def test_host(case, op, target, variants):
    programs.check_on_host(*programs.compiled(pool_program(case, op), target, variants))


@needs_arm
@pytest.mark.parametrize("target,variants", EMULATED)
@pytest.mark.parametrize("op", ["avg", "max"])
@pytest.mark.parametrize("case", PROGRAM_CASES, ids=lambda c: c["id"])
def test_emulated(case, op, target, variants):
    programs.check_emulated(*programs.compiled(pool_program(case, op), target, variants))


@needs_tflm
@pytest.mark.parametrize("target,variants", HOST)
@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
def test_program_matches_tflite_micro(op, target, variants):
    """Each portable variant, through the target on the host, against TFLite Micro: a global pool
    of 17x17 (two blocks of words), channels % 4 = 2, a ReLU6 range."""
    rng = np.random.default_rng(18)
    N, H, W, C, scale, zp = 1, 17, 17, 6, f32(0.03), -9
    x = rng.integers(-128, 128, size=(N, H, W, C)).astype(np.int8)
    opts = tfl.Pool2DOptionsT(padding=tfl.Padding.VALID, strideW=W, strideH=H, filterWidth=W, filterHeight=H,
                              fusedActivationFunction=ACT["RELU6"])
    out_shape = (N, 1, 1, C)
    want = tflm_run(getattr(tfl.BuiltinOperator, op),
                    [((N, H, W, C), tfl.TensorType.INT8, ([scale], [zp]), False)], out_shape,
                    ([scale], [zp]), tfl.BuiltinOptions.Pool2DOptions, opts, [x])
    act_min, act_max = tflm_act_range("RELU6", scale, zp)
    case = dict(id="tflm", N=N, H=H, W=W, C=C, K=(H, W), S=(H, W), act=(act_min, act_max))
    prog, _, reference, supported = pool_program(case, "avg" if op == "AVERAGE_POOL_2D" else "max", x)
    np.testing.assert_array_equal(reference, want)
    programs.check_on_host(*programs.compiled((prog, x, want, supported), target, variants))


def test_every_kernel_is_covered():
    """Every kernel of the family runs: the reference kernels called directly, every variant
    through the programs on the host and emulated cores."""
    seen = harness.wrapped_kernels(FAMILY)
    seen |= programs.selected_kernels([pool_program(c, op) for c in PROGRAM_CASES for op in ("avg", "max")],
                                      HOST + EMULATED)
    harness.assert_covered(FAMILY, seen)
