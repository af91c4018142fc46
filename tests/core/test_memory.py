import random

import pytest

from adaptc.memory import LinearPlanner, MemoryPlanner, check_plan


def _make(cls, specs, alignment=16):
    p = cls(alignment=alignment)
    for spec in specs:
        p.add_buffer(*spec)
    return p


def _check(p):
    bufs = p.buffers
    check_plan([b.size for b in bufs], [(b.first, b.last) for b in bufs], p.plan())


# ---------------------------------------------------------------- hand-checked


def test_chain_reuses_offsets():
    # A(100, 0..1) B(50, 1..2) C(100, 2..3), alignment 16.
    # Order: A (100, first 0), C (100, first 2), B (50).
    # A -> 0.  C is not live with A -> 0.  B is live with A and C, both at
    # [0, 100) -> align_up(100) = 112.  peak = align_up(162) = 176.
    p = _make(MemoryPlanner, [(100, 0, 1, "A"), (50, 1, 2, "B"), (100, 2, 3, "C")])
    assert p.plan() == [0, 112, 0]
    assert p.peak == 176
    assert [p.offset(i) for i in range(3)] == [0, 112, 0]
    _check(p)


@pytest.mark.parametrize("alignment, expected, peak", [
    # sizes 3, 5, 7 all live at step 0; order 7 (id 2), 5 (id 1), 3 (id 0).
    # alignment 8: id2 -> 0, id1 -> align_up(7) = 8, id0 -> align_up(13) = 16;
    #              peak = align_up(19, 8) = 24.
    (8, [16, 8, 0], 24),
    # alignment 1: id2 -> 0, id1 -> 7, id0 -> 12; peak 15.
    (1, [12, 7, 0], 15),
])
def test_alignment(alignment, expected, peak):
    p = _make(MemoryPlanner, [(3, 0, 0), (5, 0, 0), (7, 0, 0)], alignment=alignment)
    assert p.plan() == expected
    assert p.peak == peak
    assert all(o % alignment == 0 for o in p.plan())


def test_zero_size_buffers():
    # Zero-size buffers get offset 0 and conflict with nothing, so B (32, live
    # over the same steps) also goes to 0.  peak = 32.
    p = _make(MemoryPlanner, [(0, 0, 5, "z0"), (32, 0, 5, "B"), (0, 2, 3, "z1")])
    assert p.plan() == [0, 0, 0]
    assert p.peak == 32
    _check(p)
    only_empty = _make(MemoryPlanner, [(0, 0, 0), (0, 0, 1)])
    assert only_empty.plan() == [0, 0]
    assert only_empty.peak == 0


def test_buffer_live_across_everything():
    # L(64, 0..4) X(48, 0..1) Y(48, 2..3) Z(32, 4..4).
    # Order L, X, Y, Z.  L -> 0.  X live with L -> 64.  Y live with L only
    # (not X) -> 64.  Z live with L only -> 64.  peak = 112.
    p = _make(MemoryPlanner,
              [(64, 0, 4, "L"), (48, 0, 1, "X"), (48, 2, 3, "Y"), (32, 4, 4, "Z")])
    assert p.plan() == [0, 64, 64, 64]
    assert p.peak == 112
    _check(p)


def test_ties_broken_by_first_use_then_id():
    # Three 32-byte buffers: id0 (2..3), id1 (0..3), id2 (0..1).
    # Tie order: id1 (first 0), id2 (first 0, higher id), id0 (first 2).
    # id1 -> 0.  id2 live with id1 -> 32.  id0 live with id1 (0) but not id2 -> 32.
    # (Ordering by id alone would give [0, 32, 0].)  peak = 64.
    p = _make(MemoryPlanner, [(32, 2, 3), (32, 0, 3), (32, 0, 1)])
    assert p.plan() == [32, 0, 32]
    assert p.peak == 64
    _check(p)


def test_fills_hole_between_buffers():
    # X(100, 0..2) Y(100, 0..1) Z(100, 0..2) W(60, 2..2).
    # X -> 0, Y -> 112, Z (live with X, Y) -> 224.  W is live with X [0,100)
    # and Z [224,324) but not Y: candidate 0 hits X -> 112; 112+60 <= 224 -> 112.
    # peak = align_up(324) = 336.
    p = _make(MemoryPlanner, [(100, 0, 2), (100, 0, 1), (100, 0, 2), (60, 2, 2)])
    assert p.plan() == [0, 112, 224, 112]
    assert p.peak == 336
    _check(p)


def test_empty_planner():
    p = MemoryPlanner()
    assert p.plan() == []
    assert p.peak == 0
    assert "peak: 0 bytes" in str(p)


def test_plan_cache_invalidated_by_add():
    p = _make(MemoryPlanner, [(64, 0, 1)])
    assert p.plan() == [0]
    p.plan().append(99)  # returned list is a copy
    assert p.plan() == [0]
    p.add_buffer(64, 1, 2)
    # Tie on size; id0 is used first -> 0, id1 (live with it at step 1) -> 64.
    assert p.plan() == [0, 64]
    assert p.peak == 128
    _check(p)


# ---------------------------------------------------------------- linear


def test_linear_planner():
    # Aligned sizes 112, 64, 0, 112 -> offsets 0, 112, (zero-size) 0, 176.
    p = _make(LinearPlanner, [(100, 0, 1), (50, 1, 2), (0, 0, 3), (100, 2, 3)])
    assert p.plan() == [0, 112, 0, 176]
    assert p.peak == 112 + 64 + 112
    _check(p)


@pytest.mark.parametrize("seed", range(20))
def test_linear_peak_is_sum_of_aligned_sizes(seed):
    rng = random.Random(seed)
    alignment = rng.choice([1, 4, 8, 16])
    p = LinearPlanner(alignment=alignment)
    sizes = [rng.choice([0, rng.randint(1, 500)]) for _ in range(rng.randint(0, 20))]
    for s in sizes:
        f = rng.randint(0, 5)
        p.add_buffer(s, f, f + rng.randint(0, 5))
    assert p.peak == sum(-(-s // alignment) * alignment for s in sizes)
    _check(p)


# ---------------------------------------------------------------- properties


def test_random_plans_valid_and_bounded():
    for seed in range(400):
        rng = random.Random(seed)
        alignment = rng.choice([1, 4, 8, 16, 32])
        n_steps = rng.randint(1, 12)
        specs = []
        for _ in range(rng.randint(1, 30)):
            first = rng.randrange(n_steps)
            last = rng.randint(first, n_steps - 1)
            size = 0 if rng.random() < 0.1 else rng.randint(1, 2000)
            specs.append((size, first, last))
        greedy = _make(MemoryPlanner, specs, alignment)
        linear = _make(LinearPlanner, specs, alignment)
        offsets = greedy.plan()
        check_plan([s[0] for s in specs], [s[1:] for s in specs], offsets)
        check_plan([s[0] for s in specs], [s[1:] for s in specs], linear.plan())
        assert all(o % alignment == 0 for o in offsets), seed
        assert all(o == 0 for o, s in zip(offsets, specs) if s[0] == 0), seed
        assert greedy.peak % alignment == 0
        assert greedy.peak <= linear.peak, seed
        live_bound = max(
            sum(s for s, f, l in specs if f <= t <= l) for t in range(n_steps))
        assert greedy.peak >= live_bound, seed
        assert greedy.peak >= max(o + s[0] for o, s in zip(offsets, specs))


# ---------------------------------------------------------------- check_plan


def test_check_plan_detects_overlap():
    sizes = [64, 64]
    with pytest.raises(AssertionError):
        check_plan(sizes, [(0, 1), (1, 2)], [0, 32])
    # Same offsets but disjoint lifetimes are fine; so is adjacency.
    check_plan(sizes, [(0, 1), (2, 3)], [0, 32])
    check_plan(sizes, [(0, 1), (1, 2)], [0, 64])
    # Zero-size buffers never conflict.
    check_plan([0, 64], [(0, 1), (0, 1)], [0, 0])
    with pytest.raises(AssertionError):
        check_plan([64], [(0, 1)], [0, 0])  # length mismatch


# ---------------------------------------------------------------- printing


def test_str_contains_names_and_peak():
    p = _make(MemoryPlanner, [(100, 0, 1, "input"), (50, 1, 2, "conv1_out"),
                              (100, 2, 3, "dense_out"), (0, 0, 3, "empty")])
    text = str(p)
    for name in ("input", "conv1_out", "dense_out", "empty"):
        assert name in text
    assert text.splitlines()[-1] == f"peak: {p.peak} bytes"
    assert "peak: 176 bytes" in text
    # One timeline row per step (0..3), each 64 columns wide between bars.
    rows = [line for line in text.splitlines() if line.count("|") == 2]
    assert len(rows) == 4
    assert all(len(r.split("|")[1]) == 64 for r in rows)
    assert "0" in rows[0].split("|")[1] and "1" not in rows[0].split("|")[1]
    assert "1" in rows[1].split("|")[1]
    assert str(LinearPlanner()).endswith("peak: 0 bytes")


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("args, word", [
    ((-1, 0, 0), "size"),
    ((8, -1, 0), "first"),
    ((8, 3, 2), "last"),
])
def test_add_buffer_validation(args, word):
    p = MemoryPlanner()
    with pytest.raises(ValueError, match=word):
        p.add_buffer(*args)
    assert len(p) == 0


def test_alignment_and_offset_validation():
    with pytest.raises(ValueError, match="alignment"):
        MemoryPlanner(alignment=0)
    p = MemoryPlanner()
    with pytest.raises(IndexError):
        p.offset(0)


# ------------------------------------------------------------------ plan_arena: in-place chains

def _chain_program():
    """x -> a (4 KiB) -> b (4 KiB) -> c (2 KiB) -> y; a is also read by step 3 (a skip)."""
    from adaptc.program import Program, Step, Tensor

    tensors = [Tensor(0, "x", (1024,), "int8", "input"), Tensor(1, "a", (4096,), "int8"),
               Tensor(2, "b", (4096,), "int8"), Tensor(3, "c", (2048,), "int8"),
               Tensor(4, "y", (2048,), "int8", "output")]
    steps = [Step(0, "op", "", [0], 1, {}, {}), Step(1, "op", "", [1], 2, {}, {}),
             Step(2, "op", "", [2], 3, {}, {}), Step(3, "op", "", [3, 1], 4, {}, {})]
    return Program("chain", tensors, steps, [0], [4])


def _live_overlaps(program, offsets):
    """(step, tensor, tensor) for every two arena tensors live at one step whose bytes overlap."""
    first, last = {}, {}
    for s in program.steps:
        first.setdefault(s.output, s.index)
        for t in s.inputs:
            last[t] = s.index
    nbytes = {t.id: t.nbytes for t in program.tensors}
    out = []
    for s in program.steps:
        live = [t for t in offsets if first[t] <= s.index <= last.get(t, first[t])]
        for i, t in enumerate(live):
            for u in live[i + 1:]:
                if offsets[t] < offsets[u] + nbytes[u] and offsets[u] < offsets[t] + nbytes[t]:
                    out.append((s.index, t, u))
    return out


def test_plan_arena_in_place_chain():
    """Step 2's kernel may write its output 48 bytes before its dying input: b and c share bytes
    there, c starting 48 bytes (rounded up to the 16-byte alignment: 48) before b; a (read again
    by step 3) is never overwritten; without the permission nothing overlaps."""
    from adaptc.schedule import plan_arena

    prog = _chain_program()
    plain, offsets, _ = plan_arena(prog)
    assert _live_overlaps(prog, offsets) == []
    chained, offsets, _ = plan_arena(prog, in_place={2: {0: 40}, 3: {1: 0}})
    assert offsets[3] == offsets[2] - 48
    assert _live_overlaps(prog, offsets) == [(2, 2, 3)]             # only the permitted pair, at its step
    assert chained.peak < plain.peak
    # a is read by step 3 after c is born: the chain may not continue through it (step 1 gave no
    # permission), and step 3's permission on a (its last read) does not apply to the program output
    assert offsets[1] + 4096 <= min(offsets[2], offsets[3]) or offsets[1] >= max(offsets[2] + 4096, offsets[3] + 2048)


def test_plan_arena_keeps_the_smaller_plan():
    """A chain holds its bytes for its whole lifetime; where that makes the arena larger than the
    plan without it, plan_arena keeps the plan without."""
    from adaptc.schedule import plan_arena

    prog = _chain_program()
    plain = plan_arena(prog)[0].peak
    assert plan_arena(prog, in_place={2: {0: 1 << 20}})[0].peak == plain          # a 1 MiB offset: no gain
