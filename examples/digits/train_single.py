"""Train the bundled single-exit digits CNN and export it as ONNX (adaptc/data/digits_cnn.onnx).

The backbone of digits_exits.onnx's deepest path (examples/digits/train.py) with only its final
head -- an ordinary classifier without exits, for exits attached after training:

    conv 3x3 1->8, ReLU, max pool 2
    conv 3x3 8->32, ReLU
    conv 3x3 32->64, ReLU, max pool 2
    fc 256->64, ReLU, fc 64->10

Trained like train.py (Adam, learning rate 3e-3, cosine schedule, batches of 64, cross-entropy,
on the training split of adaptc.data.digits()), deterministic (fixed seeds, one thread,
torch.use_deterministic_algorithms). Needs torch (CPU; `pip install torch==2.13.0`) -- only this
script does; adaptc never imports it.

    python examples/digits/train_single.py [--epochs 60] [--out adaptc/data/digits_cnn.onnx]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from adaptc.data import digits

ROOT = Path(__file__).resolve().parents[2]


def digits_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--out", type=Path, default=ROOT / "adaptc" / "data" / "digits_cnn.onnx")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in digits())
    model = digits_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    for _epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x_train), generator=gen).split(64):
            opt.zero_grad()
            loss_fn(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(x_test).argmax(1) == y_test).float().mean())
    print(f"test accuracy: {acc:.4f}")
    torch.onnx.export(model, (x_test[:1],), str(args.out), input_names=["image"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
