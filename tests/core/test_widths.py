"""Width levels (adaptc.widths): one build of a slimmable network's widths, bit-exact per level
with each width compiled alone, the weights stored once, and refusals that name what breaks."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

import adaptc
from adaptc.errors import InputError
from adaptc.widths import Level
from slim_models import slimmable

WIDTHS = (0.25, 0.5, 1.0)
C_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4, "float": 4}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (160, 1, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 160)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return slimmable(tmp_path_factory.mktemp("slim"), WIDTHS)


def build(paths, data, target):
    return adaptc.compile(paths, width_levels=True, target=target, calibration=data, thresholds=[0.4])


@pytest.fixture(scope="module")
def built(paths, data):
    return build(paths, data, "cortex-m4")


def test_levels_are_width_and_exit(built):
    assert built.levels == [Level(w, e) for w in WIDTHS for e in (0, 1)]
    assert built.width_levels.fractions == list(WIDTHS)


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0plus", "cortex-m55"])
def test_every_level_is_bit_exact_with_its_width_compiled_alone(paths, data, target):
    """The level's C (one build, the widest's weights read as channel prefixes) against the
    width's own model compiled alone (its own kernels, compact weights) and against that width's
    Relax module on llvm."""
    x, _ = data
    built = build(paths, data, target)
    for level, (_, exit_cap) in enumerate(built.levels):
        alone = built.width_levels.models[level // 2]
        exits = set()
        for k in range(24):
            xq = built.quantize_input(x[k])
            got, want = built.run(xq, level=level), alone.run(alone.quantize_input(x[k]), level=exit_cap)
            ref = built.reference(xq, level=level)
            assert (got.exit, got.label, got.confidence) == (want.exit, want.label, want.confidence), (level, k)
            np.testing.assert_array_equal(got.logits, want.logits)
            np.testing.assert_array_equal(got.logits, ref.logits)
            exits.add(got.exit)
        assert max(exits) <= exit_cap


def test_weights_are_stored_once(built):
    """Every weighted step of every width reads the widest's array: the C holds each weight
    array once, and the build's flash is the widest's weights plus each width's own tables."""
    text = built.files[f"{built.prefix}.c"]
    wide = built.width_levels.scheduled[-1]
    weighted = [st for st in wide.steps if st.step.prefix_weights]
    assert weighted
    for st in weighted:
        name = f"s{st.index}_w{len(WIDTHS) - 1}_weights"
        assert text.count(f"{name}[") == 1                    # declared once
        assert text.count(name) == 1 + len(WIDTHS)            # passed by every width's call
    declared = {m[1]: int(m[2]) * C_BYTES[m[0]] for m in re.findall(r"static const (\w+) (\w+)\[(\d+)\] =", text)}
    assert built.weight_bytes == built.report["weight_bytes"] == sum(declared.values())
    assert built.weight_bytes < sum(m.weight_bytes for m in built.width_levels.models)


def test_the_c_refuses_a_level_out_of_range(built, data):
    xq = built.quantize_input(data[0][0])
    with pytest.raises(InputError, match=r"levels 0\.\.5"):
        built.run(xq, level=6)
    res = np.zeros((), built.result_dtype())
    assert built.host_model().run_level(xq, 6, res) == 2           # <PREFIX>_ERROR_LEVEL
    assert built.host_model().run_level(xq, -1, res) == 2


def test_a_width_that_is_not_a_prefix_is_refused_naming_layer_and_channel(tmp_path, data):
    paths = slimmable(tmp_path, WIDTHS, break_nesting=True)
    with pytest.raises(InputError, match=r"width 0\).*layer .*conv0.*output channel 1's weights"):
        adaptc.compile(paths, width_levels=True, target="cortex-m4", calibration=data, thresholds=[0.4])


def test_models_out_of_order_or_alone_are_refused(paths, data):
    with pytest.raises(InputError, match="narrowest first"):
        adaptc.compile(paths[::-1], width_levels=True, target="cortex-m4", calibration=data, thresholds=[0.4])
    with pytest.raises(InputError, match="models of each width"):
        adaptc.compile(paths[0], width_levels=True, target="cortex-m4", calibration=data)
    with pytest.raises(InputError, match="Cortex-M"):
        adaptc.compile(paths, width_levels=True, target="llvm", calibration=data, thresholds=[0.4])


def test_width_levels_on_the_emulated_core(built, data):
    """The cross-built firmware at every level: the same results as the host build, and the
    narrowest width's instructions a fraction of the widest's."""
    xq = built.quantize_input(data[0][:3].reshape(3, 1, 1, 8, 8))
    batch = built.run_batch_on_target(xq)
    for level in range(len(built.levels)):
        for k in range(3):
            host = built.run(xq[k], level=level)
            assert (batch.exit[level, k], batch.label[level, k]) == (host.exit, host.label)
            np.testing.assert_array_equal(batch.logits[level, k].reshape(host.logits.shape), host.logits)
    narrow, wide = batch.instructions[1].mean(), batch.instructions[-1].mean()
    assert narrow < 0.5 * wide


def test_simulator_follows_the_active_channels(built, data):
    """``simulate`` gives every (width, exit) level its width's cost: each level's instructions
    within the cost model's tolerance (10 %, as test_costs) of the emulated core's, leaving at the level's exit."""
    sim = adaptc.simulate(built)
    assert [(lv.width, lv.level) for lv in sim.levels] == [(w, i) for i, (w, _) in enumerate(built.levels)]
    assert sim.weight_bytes == built.weight_bytes
    xq = built.quantize_input(data[0][:2].reshape(2, 1, 1, 8, 8))
    caps = [level for level, (_, e) in enumerate(built.levels) if e == 0]      # every input leaves at exit 0
    batch = built.run_batch_on_target(xq, levels=caps)
    for i, level in enumerate(caps):
        estimated, measured = sim.exits[level].instructions, batch.instructions[i].mean()
        assert abs(estimated / measured - 1) < 0.10, (level, estimated, measured)     # test_costs' tolerance
    cycles = [sim.levels[level].cycles for level in caps]
    assert cycles == sorted(cycles) and cycles[0] < 0.5 * cycles[-1]


def test_compile_width_levels_cli(paths, data, tmp_path):
    """``adaptc compile W1 W2 W3 --width-levels``: one firmware project whose report lists every
    level; several models without the flag are refused."""
    from click.testing import CliRunner

    from adaptc.cli import main

    x, y = data
    np.savez(tmp_path / "cal.npz", x=x, y=y)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["compile", *map(str, paths), "--width-levels", "--calibration",
                                    str(tmp_path / "cal.npz"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "width levels: widths 0.25, 0.5, 1" in res.output
    report = json.loads((out / "report.json").read_text())
    levels = report["width_levels"]["levels"]
    assert [(r["width"], r["exit"]) for r in levels] == [(w, e) for w in WIDTHS for e in (0, 1)]
    assert all(0 <= r["accuracy"] <= 1 and r["expected_cost"] <= r["worst_cost"] * (1 + 1e-12) for r in levels)
    header = (out / "slim_w100.h").read_text()
    assert "#define SLIM_W100_LEVELS 6" in header and "#define SLIM_W100_WIDTHS 3" in header
    res = CliRunner().invoke(main, ["compile", *map(str, paths), "-o", str(tmp_path / "no")])
    assert res.exit_code == 2 and "--width-levels" in res.output and not (tmp_path / "no").exists()
