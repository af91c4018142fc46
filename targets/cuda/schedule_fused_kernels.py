"""ScheduleFusedKernels: each fused kernel (FuseOps + FuseTIR) becomes one loop nest over its
output, its intermediates computed per output element into thread-local buffers.

Why not dlight's rules: they ``compute_inline`` every elementwise block into its consumer. A
fixed-point requantization (adaptc.fixedpoint: srdhm reads its product three times, rdbpot its
input twice) then becomes one expression in which every reused value is written out again at
each use -- exponential in the chain's depth; TIR's simplifier takes seconds per kernel on it
with a static batch and does not finish with a symbolic one. Here a producer is inlined only
where that repeats nothing, and otherwise computed once per output element at the thread loop.

Algorithm (blocks in reverse order; the last block writes the kernel's output):
1. The first block met (the output) is an *anchor*: its spatial loops are fused and split into
   ``[blocks, threads]`` (bound to ``blockIdx.x`` / ``threadIdx.x``, or ``parallel`` / serial on
   a CPU), its reduction loops inside.
2. Every earlier block is, in this order of preference:
   a. inlined into its consumer, if it is injective, has exactly one consumer block, and that
      consumer reads it at exactly one place (nothing is repeated);
   b. computed at the thread loop of the nearest anchor that can hold it (``compute_at``; all
      its consumers must be under that loop), its buffer in ``local`` scope -- each thread
      computes the elements its output needs, each once;
   c. otherwise a new anchor (a second kernel in the same function), as in step 1.
3. Reductions get their init block split off (``decompose_reduction``) where their bindings
   allow; elsewhere TIR lowers the init as a store guarded by the first reduction step.

Requires: PrimFuncs in the module that dlight can normalize (one root block; functions it cannot
are left to the later rules of the same ``ApplyDefaultSchedule``), not yet scheduled.

Ensures: every PrimFunc that this rule took is scheduled: on a GPU, each of its anchors is one
kernel (a fused chain of elementwise ops is one kernel); the arithmetic is unchanged (only
``compute_inline``, ``compute_at``, ``set_scope``, loop fuse/split/bind/reorder are applied), so
integer results are bit-exact with the unfused module's.

Parameters: ``gpu`` -- bind threads (True) or leave the loops for a CPU (outer loop
``parallel``); ``threads`` -- threads per block (the inner split factor).
"""
from __future__ import annotations

import re

import tvm
from tvm import s_tir, tirx
from tvm.s_tir import dlight as dl


def ScheduleFusedKernels(gpu: bool = True, threads: int = 256) -> tvm.transform.Pass:
    """The rule as a module pass, with dlight's Fallback for what it does not take."""
    return dl.ApplyDefaultSchedule(ThreadLocalChain(gpu, threads), dl.gpu.Fallback())


def _loads(stmt, buffer) -> int:
    """How many places in ``stmt`` read ``buffer`` (by name; names are unique in a PrimFunc
    after FuseTIR -- a name read under another buffer counts too, which only makes the
    inlining test more conservative)."""
    return len(re.findall(r"(?<![\w.])" + re.escape(buffer.name) + r"\[", stmt.script()))


class ThreadLocalChain(dl.ScheduleRule):
    """The schedule rule of the module docstring."""

    def __init__(self, gpu: bool = True, threads: int = 256):
        self.gpu, self.threads = gpu, threads

    def apply(self, func, target, tunable):
        if not isinstance(func, tirx.PrimFunc):
            return None
        sch = s_tir.Schedule(func)
        return sch if self.schedule(sch, self.threads) else None

    def schedule(self, sch, threads) -> bool:
        """Apply the rule to ``sch`` (False: dlight cannot normalize its function). ``threads``:
        an int, or a sampled ``ExprRV`` when MetaSchedule tunes it (``tuning_space``)."""
        try:
            infos = dl.normalize_prim_func(sch)
        except ValueError:              # not one root block (e.g. a shape function)
            return False
        if infos is None:
            return False
        anchors: list = []              # thread loops, nearest (latest made) first
        reductions = []
        for info in reversed(infos):
            if anchors and (self._inline(sch, info) or self._attach(sch, info, anchors, reductions)):
                continue
            anchors.insert(0, self._anchor(sch, info, reductions, threads))
        for block, loop in reductions:
            try:
                sch.decompose_reduction(block, loop)
            except s_tir.ScheduleError:     # bindings not affine after compute_at: the init
                pass                        # stays in the block (lowered as a guarded store)
        return True

    @staticmethod
    def _inline(sch, info) -> bool:
        block = info.block_rv
        writes = sch.get(block).writes
        consumers = sch.get_consumers(block)
        if not info.is_injective() or len(writes) != 1 or len(consumers) != 1 \
                or _loads(sch.get(consumers[0]).body, writes[0].source) != 1:
            return False
        try:
            sch.compute_inline(block)
        except s_tir.ScheduleError:
            return False
        return True

    @staticmethod
    def _attach(sch, info, anchors, reductions) -> bool:
        block = info.block_rv
        for loop in anchors:
            try:
                sch.compute_at(block, loop, preserve_unit_loops=True)
            except s_tir.ScheduleError:
                continue
            try:
                sch.set_scope(block, 0, "local")
            except s_tir.ScheduleError:  # it writes an output of the function: stays global
                pass
            kinds = info.dom_kind()
            own = sch.get_loops(block)[-len(kinds):] if kinds else []
            r = [loop for loop, kind in zip(own, kinds) if kind == "R"]
            if r:
                reductions.append((block, r[0]))
            return True
        return False

    def _anchor(self, sch, info, reductions, threads):
        block = info.block_rv
        kinds = info.dom_kind()
        loops = sch.get_loops(block)
        s = [loop for loop, kind in zip(loops, kinds) if kind == "S"]
        r = [loop for loop, kind in zip(loops, kinds) if kind == "R"]
        o = [loop for loop, kind in zip(loops, kinds) if kind == "O"]
        if not s:
            s = [sch.add_unit_loop(block)]
        sch.reorder(*s, *r, *o)
        outer, inner = sch.split(sch.fuse(*s), factors=[None, threads])
        if self.gpu:
            sch.bind(outer, "blockIdx.x")
            sch.bind(inner, "threadIdx.x")
        else:
            sch.parallel(outer)
        if r:
            reductions.append((block, r[0]))
        return inner


THREAD_CHOICES = (32, 64, 128, 256, 512, 1024)


def tuning_space(gpu: bool = True):
    """The rule as a MetaSchedule search space (tuning.py): the same block placement,
    the threads per block (a CPU: iterations per parallel chunk) sampled from THREAD_CHOICES
    for each kernel. MetaSchedule's own rules would inline the requantization chains again
    (module docstring) and take seconds to build each candidate."""
    from tvm.s_tir import meta_schedule as ms

    rule = ThreadLocalChain(gpu)

    def space(sch):
        threads = sch.sample_categorical(list(THREAD_CHOICES), [1 / len(THREAD_CHOICES)] * len(THREAD_CHOICES))
        rule.schedule(sch, threads)
        return sch

    return ms.space_generator.ScheduleFn(space, sch_rules=[], mutator_probs={})
