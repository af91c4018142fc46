"""Train a small "PyTorch-style" digits classifier with global-average-pooling exit heads and
export it as ONNX (tests/data/gap_exits.onnx).

Each head pools its block's feature map the way PyTorch code usually writes it,
``x.mean((2, 3))`` -- exported as ONNX ``ReduceMean`` (axes [2, 3], keepdims 0), not
``GlobalAveragePool`` -- followed by one ``Linear``. Three heads, shallow to deep, the last the
final one (a multi-output model: adaptc's convention for exits):

    conv 3x3 1->16, ReLU, conv 3x3 16->16, ReLU   (8x8) -> exit 0: mean, fc 16->10
    max pool 2, conv 3x3 16->24, ReLU              (4x4) -> exit 1: mean, fc 24->10
    conv 3x3 24->48, ReLU                          (4x4) -> exit 2 (final): mean, fc 48->10

17,286 parameters (72 KB of ONNX); test accuracy per exit 82.7 %, 98.0 %, 97.8 %.

Data: adaptc.data.digits() (8x8 images in [0, 1], the bundled 1,347 / 450 split). Trained jointly
(the sum of the exits' cross-entropies), deterministic (fixed seeds, one thread). Needs torch
(CPU; ``pip install torch==2.13.0`` into a separate environment) -- only this script does;
adaptc never imports it. Run from the repository root so that ``adaptc`` is importable:

    PYTHONPATH=. python examples/gap_classifier/train.py [--epochs 120] [--out tests/data/gap_exits.onnx]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from adaptc.data import digits

ROOT = Path(__file__).resolve().parents[2]


class GapExits(nn.Module):
    def __init__(self):
        super().__init__()
        self.block0 = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.block1 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(16, 24, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(24, 48, 3, padding=1), nn.ReLU())
        self.head0 = nn.Linear(16, 10)
        self.head1 = nn.Linear(24, 10)
        self.head2 = nn.Linear(48, 10)

    def forward(self, x):
        h0 = self.block0(x)
        h1 = self.block1(h0)
        h2 = self.block2(h1)
        return self.head0(h0.mean((2, 3))), self.head1(h1.mean((2, 3))), self.head2(h2.mean((2, 3)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "gap_exits.onnx")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in digits())
    model = GapExits()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    for _ in range(args.epochs):
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
                      output_names=["exit0", "exit1", "exit2"], opset_version=13, dynamo=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
