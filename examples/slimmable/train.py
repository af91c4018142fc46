"""Train a slimmable multi-exit digits CNN and export one ONNX model per width
(adaptc/data/slimmable_w025.onnx, _w050, _w075, _w100).

A slimmable network (Yu et al., "Slimmable Neural Networks", ICLR 2019): one set of weights that
runs at the widths 0.25, 0.5, 0.75 and 1.0. At width w every sliced layer uses the first
k = round(w * C) of its C channels -- a conv or linear weight is the prefix
weight[:out_k, :in_k] of the full one, its bias bias[:out_k] -- and each width has its own batch
norm (switchable BN: one BatchNorm2d per width per layer). Three exit heads, shallow to deep, on
the handwritten digits that ship with adaptc (adaptc.data.digits(): 8x8 images in [0, 1]):

    stem:   conv 3x3 1->32, BN, ReLU                  (8x8)  input not sliced (1 channel)
    block1: conv 3x3 32->64, BN, ReLU, max pool 2     (4x4)  -> exit 0: global avg pool, fc 64->10
    block2: conv 3x3 64->64, BN, ReLU                 (4x4)  -> exit 1: global avg pool, fc 64->10
    block3: conv 3x3 64->96, BN, ReLU, max pool 2     (2x2)  -> exit 2 (final): global avg pool, fc 96->10

Channels per width (stem / block1 / block2 / block3): 0.25: 8/16/16/24, 0.5: 16/32/32/48,
0.75: 24/48/48/72, 1.0: 32/64/64/96; the heads' 10 outputs are never sliced. Trained jointly:
each batch runs at all four widths and the loss is the sum of every exit's cross-entropy at every
width. Deterministic (fixed seeds, one thread).

adaptc (adaptc.widths) stores the weights once, so it needs every width's int8 weights to be a
prefix of the widest's, not only the float ones. Its post-training quantization scales each output
channel by max |w| / 127 over the inputs a width keeps, with BN folded in; so after each step the
weights are projected -- in every sliced layer each output channel's largest |w| stays among the
narrowest width's inputs, BN's gamma positive -- and after training rounded onto their channel's
int8 grid (which also keeps the codes clear of rounding ties).

Each width is exported as a plain network (ordinary Conv2d / BatchNorm2d / Linear holding the
sliced weights and that width's BN, eval mode; BN is not folded, so the files' Conv / Gemm weights
are the exact prefixes), outputs exit0, exit1, exit2, input "image" (1, 1, 8, 8). The script then
checks every file: its weights the prefixes of the full ones, its int8 codes (BN folded) the
prefixes of the widest's, its outputs those of the slimmable model at its width (onnxruntime, the
whole test split). Needs torch, onnx and onnxruntime (CPU; `pip install torch==2.13.0 onnx
onnxruntime`) -- only this script does; adaptc never imports torch.

    python examples/slimmable/train.py [--epochs 60] [--out-dir adaptc/data]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn import functional as F

from adaptc.data import digits

ROOT = Path(__file__).resolve().parents[2]
WIDTHS = (0.25, 0.5, 0.75, 1.0)
CHANNELS = (32, 64, 64, 96)  # stem, block1, block2, block3 at width 1.0
CLASSES = 10


def width_channels(w: float) -> tuple[int, ...]:
    return tuple(int(round(w * c)) for c in CHANNELS)


class SlimConv2d(nn.Conv2d):
    """A 3x3 conv holding the full weight; ``forward(x, out_k)`` uses weight[:out_k, :in_k], in_k = x's channels."""

    def forward(self, x, out_k):
        return F.conv2d(x, self.weight[:out_k, :x.shape[1]], self.bias[:out_k], self.stride, self.padding)


class SlimLinear(nn.Linear):
    """A linear head holding the full weight; uses weight[:, :in_k] (the class outputs are never sliced)."""

    def forward(self, x):
        return F.linear(x, self.weight[:, :x.shape[1]], self.bias)


class SwitchableBN(nn.Module):
    """One BatchNorm2d per width, each with that width's channel count."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        self.bn = nn.ModuleList(nn.BatchNorm2d(c) for c in channels)

    def forward(self, x, i):
        return self.bn[i](x)


class SlimmableDigits(nn.Module):
    def __init__(self):
        super().__init__()
        per_width = [width_channels(w) for w in WIDTHS]
        ins = (1,) + CHANNELS[:-1]
        self.convs = nn.ModuleList(SlimConv2d(i, o, 3, padding=1) for i, o in zip(ins, CHANNELS))
        self.bns = nn.ModuleList(SwitchableBN(tuple(ch[j] for ch in per_width)) for j in range(len(CHANNELS)))
        self.exits = nn.ModuleList(SlimLinear(c, CLASSES) for c in CHANNELS[1:])

    @torch.no_grad()
    def nest_(self):
        """Project the weights so that every width's int8 codes are a prefix of the widest's: int8
        post-training quantization scales each output channel by its largest |w| over the inputs a width
        keeps, so that largest |w| must lie in the narrowest width's inputs (the tail is clamped to it);
        and BN's gamma stays positive, so that folding BN into the conv flips no channel's sign."""
        for layer in (*self.convs[1:], *self.exits):
            w = layer.weight
            n = int(round(WIDTHS[0] * w.shape[1]))
            bound = w[:, :n].abs().flatten(1).amax(1).view(-1, *[1] * (w.dim() - 1))
            w[:, n:].clamp_(-bound, bound)
        for bn in self.bns.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.weight.clamp_(min=1e-2)

    @torch.no_grad()
    def snap_(self):
        """Round every conv / linear weight onto its output channel's int8 grid (max |w| / 127), after
        training: the compiler's int8 codes are then these integers for every width (BN folded or not),
        far from any rounding tie, and the float model is what the int8 one approximates."""
        for layer in (*self.convs, *self.exits):
            w = layer.weight
            scale = (w.abs().flatten(1).amax(1) / 127).clamp(min=1e-12).view(-1, *[1] * (w.dim() - 1))
            w.copy_(torch.round(w / scale) * scale)

    def forward(self, x, i):
        """The three exits' logits, shallow to deep, at width WIDTHS[i]."""
        ch = width_channels(WIDTHS[i])
        outs = []
        for j, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            x = F.relu(bn(conv(x, ch[j]), i))
            if j in (1, 3):
                x = F.max_pool2d(x, 2)
            if j >= 1:
                outs.append(self.exits[j - 1](x.mean((2, 3))))
        return tuple(outs)


class PlainDigits(nn.Module):
    """One width of SlimmableDigits as an ordinary network (what is exported)."""

    def __init__(self, ch: tuple[int, ...]):
        super().__init__()

        def block(cin, cout, pool):
            layers = [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
            return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))

        def head(cin):
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, CLASSES))

        self.stem = block(1, ch[0], False)
        self.block1 = block(ch[0], ch[1], True)
        self.exit0 = head(ch[1])
        self.block2 = block(ch[1], ch[2], False)
        self.exit1 = head(ch[2])
        self.block3 = block(ch[2], ch[3], True)
        self.exit2 = head(ch[3])

    def forward(self, x):
        h1 = self.block1(self.stem(x))
        h2 = self.block2(h1)
        h3 = self.block3(h2)
        return self.exit0(h1), self.exit1(h2), self.exit2(h3)


@torch.no_grad()
def plain_model(slim: SlimmableDigits, i: int) -> PlainDigits:
    """Width WIDTHS[i] of ``slim``: every conv / linear weight the exact prefix of the full one, BN of that width."""
    ch = width_channels(WIDTHS[i])
    ins = (1,) + ch[:-1]
    plain = PlainDigits(ch)
    blocks = (plain.stem, plain.block1, plain.block2, plain.block3)
    for j, (blk, conv, bns) in enumerate(zip(blocks, slim.convs, slim.bns)):
        blk[0].weight.copy_(conv.weight[:ch[j], :ins[j]])
        blk[0].bias.copy_(conv.bias[:ch[j]])
        blk[1].load_state_dict(bns.bn[i].state_dict())
    for head, lin, cin in zip((plain.exit0, plain.exit1, plain.exit2), slim.exits, ch[1:]):
        head[2].weight.copy_(lin.weight[:, :cin])
        head[2].bias.copy_(lin.bias)
    return plain.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "adaptc" / "data")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in digits())
    model = SlimmableDigits()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x_train), generator=gen).split(64):
            opt.zero_grad()
            loss = sum(loss_fn(out, y_train[idx]) for i in range(len(WIDTHS)) for out in model(x_train[idx], i))
            loss.backward()
            opt.step()
            model.nest_()
        sched.step()
    model.snap_()
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s")

    model.eval()
    print("test accuracy (450 images)   exit0   exit1   exit2")
    with torch.no_grad():
        for i, w in enumerate(WIDTHS):
            acc = [float((out.argmax(1) == y_test).float().mean()) for out in model(x_test, i)]
            print(f"  width {w:<4}  {'/'.join(map(str, width_channels(w))):>12}   "
                  + "  ".join(f"{a:.4f}" for a in acc))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    slim_layers = {"stem": model.convs[0], "block1": model.convs[1], "block2": model.convs[2],
                   "block3": model.convs[3], "exit0": model.exits[0], "exit1": model.exits[1], "exit2": model.exits[2]}
    codes = []
    for i, w in enumerate(WIDTHS):
        out = args.out_dir / f"slimmable_w{round(w * 100):03d}.onnx"
        # no constant folding: BN stays a BatchNormalization node, so every Conv / Gemm weight in the file
        # is the exact prefix of the full one
        torch.onnx.export(plain_model(model, i), (x_test[:1],), str(out), input_names=["image"],
                          output_names=["exit0", "exit1", "exit2"], opset_version=17, dynamo=False,
                          do_constant_folding=False)
        layers = onnx_layers(out)
        assert layers.keys() == slim_layers.keys(), f"{out.name}: layers {sorted(layers)}"
        for name, (weight, bias, _) in layers.items():
            full = slim_layers[name]
            k_out, k_in = weight.shape[:2]
            assert np.array_equal(weight, full.weight.detach().numpy()[:k_out, :k_in]), f"{out.name}: {name}"
            assert np.array_equal(bias, full.bias.detach().numpy()[:k_out]), f"{out.name}: {name}"
        codes.append({name: int8_codes(weight, bn) for name, (weight, _, bn) in layers.items()})
        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            ref = [o.numpy() for o in model(x_test, i)]
        got = [np.concatenate(a) for a in zip(*(sess.run(None, {"image": x[None].numpy()}) for x in x_test))]
        diff = max(float(np.abs(g - r).max()) for g, r in zip(got, ref))
        assert diff < 1e-4, f"{out.name}: onnxruntime differs from the slimmable model by {diff:.2e}"
        params = sum(p.numel() for p in plain_model(model, i).parameters())
        ops = sorted({n.op_type for n in onnx.load(str(out)).graph.node})
        print(f"wrote {out} ({out.stat().st_size:,} bytes): width {w}, {params:,} parameters, "
              f"onnxruntime max |diff| {diff:.1e}, ops {', '.join(ops)}")
    for w, layer_codes in zip(WIDTHS, codes):
        for name, c in layer_codes.items():
            top = codes[-1][name]
            assert np.array_equal(c, top[tuple(slice(0, n) for n in c.shape)]), f"width {w}, {name}: int8 codes"
    print("every width's int8 weight codes (BN folded, per-channel max |w| / 127) are a prefix of the widest's")


def onnx_layers(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Each Conv / Gemm of an exported file by layer name: weight ([out, in, ...]), bias and the scale
    gamma / sqrt(var + eps) of the BatchNormalization right after it (None for the heads)."""
    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    bn_of = {n.input[0]: n for n in graph.node if n.op_type == "BatchNormalization"}
    layers = {}
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        weight, bias = inits[node.input[1]], inits[node.input[2]]
        if node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute):
            weight = weight.T
        bn, scale = bn_of.get(node.output[0]), None
        if bn is not None:
            eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
            scale = inits[bn.input[1]] / np.sqrt(inits[bn.input[4]] + np.float32(eps))
        layers[node.input[1].split(".")[0]] = (weight, bias, scale)
    return layers


def int8_codes(weight: np.ndarray, bn_scale: np.ndarray | None) -> np.ndarray:
    """Per-output-channel symmetric int8 codes (max |w| / 127) of the weight with BN folded in."""
    w = weight if bn_scale is None else weight * bn_scale.reshape(-1, *[1] * (weight.ndim - 1))
    scale = np.abs(w).reshape(len(w), -1).max(axis=1) / np.float32(127)
    return np.clip(np.round(w / scale.reshape(-1, *[1] * (w.ndim - 1))), -127, 127).astype(np.int8)

if __name__ == "__main__":
    main()
