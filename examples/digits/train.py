"""Train the bundled multi-exit digits CNN and export it as ONNX (adaptc/data/digits_exits.onnx).

A small network with three exit heads, shallow to deep, for the handwritten digits that ship with
adaptc (adaptc.data.digits(): 8x8 images in [0, 1]); the early heads are cheap so that an
adaptive model can stop early on easy inputs:

    conv 3x3 1->8, ReLU, max pool 2        -> exit 0: fc 128->10
    conv 3x3 8->32, ReLU                   -> exit 1: max pool 2, fc 128->10
    conv 3x3 32->64, ReLU, max pool 2      -> exit 2 (final): fc 256->64, ReLU, fc 64->10

Trained jointly (the sum of the exits' cross-entropies), deterministic (fixed seeds, one
thread). Needs torch (CPU; `pip install torch==2.13.0`) -- only this script does; adaptc never
imports it.

    python examples/digits/train.py [--epochs 60] [--out adaptc/data/digits_exits.onnx]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from adaptc.data import digits

ROOT = Path(__file__).resolve().parents[2]


class DigitsExits(nn.Module):
    def __init__(self):
        super().__init__()
        self.block0 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.exit0 = nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
        self.block1 = nn.Sequential(nn.Conv2d(8, 32, 3, padding=1), nn.ReLU())
        self.exit1 = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 2 * 2, 10))
        self.block2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.exit2 = nn.Sequential(nn.Flatten(), nn.Linear(64 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        h0 = self.block0(x)
        h1 = self.block1(h0)
        h2 = self.block2(h1)
        return self.exit0(h0), self.exit1(h1), self.exit2(h2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--out", type=Path, default=ROOT / "adaptc" / "data" / "digits_exits.onnx")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in digits())
    model = DigitsExits()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    for _epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x_train), generator=gen).split(64):
            opt.zero_grad()
            loss = sum(loss_fn(out, y_train[idx]) for out in model(x_train[idx]))
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        acc = [float((out.argmax(1) == y_test).float().mean()) for out in model(x_test)]
    print("test accuracy per exit: " + ", ".join(f"{a:.4f}" for a in acc))
    torch.onnx.export(model, (x_test[:1],), str(args.out), input_names=["image"],
                      output_names=["exit0", "exit1", "exit2"], opset_version=17, dynamo=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
