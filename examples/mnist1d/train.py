"""Train the bundled single-exit MNIST-1D classifiers and export them as ONNX.

Two ordinary 1-D CNNs without exit heads, for adaptc.data.mnist1d() (signals of 40 samples,
channels first: input (1, 1, 40) float32, output logits (1, 10)), the material for early exits
attached after training and for network cascades:

adaptc/data/mnist1d_cnn.onnx -- the "big" model, a typical design (not shaped for exits):

    conv 5 1->16, ReLU                          (40 samples)
    conv 3 16->32 stride 2, ReLU                (20)
    conv 3 32->32, ReLU
    conv 3 32->64 stride 2, ReLU                (10)
    conv 3 64->64, ReLU
    flatten 64x10 -> fc 640->10

adaptc/data/mnist1d_small.onnx -- the cheap first stage of a cascade (about 1/15 of the MACs):

    conv 5 1->16, ReLU, max pool 2              (20)
    conv 3 16->16, ReLU, max pool 2             (10)
    flatten 16x10 -> fc 160->10

Trained on the training split only (4,000 signals): AdamW (weight decay 0.01, learning rate 5e-3
big / 1e-2 small, cosine schedule over 200 epochs, batches of 64), cross-entropy; each batch
augmented in the style of MNIST-1D's generator -- a random circular shift of up to 4 samples
either way and Gaussian noise of standard deviation 0.05. (These settings were chosen on a
validation split, the last 800 training signals, never on the test split.) Deterministic (fixed seeds, one thread,
torch.use_deterministic_algorithms). Needs torch (CPU; `pip install torch==2.13.0`) -- only this
script does; adaptc never imports it.

    python examples/mnist1d/train.py [--model big|small|both] [--epochs 200]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from adaptc.data import mnist1d

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "adaptc" / "data"
SHIFT = 4          # samples of circular shift, each way
NOISE = 0.05       # standard deviation of the added noise (the signals have standard deviation 1)


def conv(cin, cout, k, stride=1):
    return [nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2), nn.ReLU()]


def big() -> nn.Module:
    return nn.Sequential(*conv(1, 16, 5), *conv(16, 32, 3, 2), *conv(32, 32, 3), *conv(32, 64, 3, 2),
                         *conv(64, 64, 3), nn.Flatten(), nn.Linear(64 * 10, 10))


def small() -> nn.Module:
    return nn.Sequential(*conv(1, 16, 5), nn.MaxPool1d(2), *conv(16, 16, 3), nn.MaxPool1d(2),
                         nn.Flatten(), nn.Linear(16 * 10, 10))


# kind -> (network, file, learning rate)
MODELS = {"big": (big, "mnist1d_cnn.onnx", 5e-3), "small": (small, "mnist1d_small.onnx", 1e-2)}


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    shifts = torch.randint(-SHIFT, SHIFT + 1, (len(x),), generator=gen)
    idx = (torch.arange(x.shape[-1])[None, :] - shifts[:, None]) % x.shape[-1]
    x = torch.gather(x, 2, idx[:, None, :].expand_as(x))
    return x + NOISE * torch.randn(x.shape, generator=gen)


def train(kind: str, epochs: int, lr: float | None, weight_decay: float, aug: bool) -> nn.Module:
    torch.manual_seed(0)
    x_train, y_train, _, _ = (torch.from_numpy(a) for a in mnist1d())
    model = MODELS[kind][0]()
    opt = torch.optim.AdamW(model.parameters(), lr=lr or MODELS[kind][2], weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    for _epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(x_train), generator=gen).split(64):
            xb = augment(x_train[idx], gen) if aug else x_train[idx]
            opt.zero_grad()
            loss_fn(model(xb), y_train[idx]).backward()
            opt.step()
        sched.step()
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["big", "small", "both"], default="both")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--lr", type=float, default=None, help="default: 5e-3 (big), 1e-2 (small)")
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=DATA)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    _, _, x_test, y_test = (torch.from_numpy(a) for a in mnist1d())
    for kind in (["big", "small"] if args.model == "both" else [args.model]):
        model = train(kind, args.epochs, args.lr, args.weight_decay, not args.no_augment)
        with torch.no_grad():
            acc = float((model(x_test).argmax(1) == y_test).float().mean())
        out = args.out_dir / MODELS[kind][1]
        print(f"{kind}: test accuracy {acc:.4f}")
        torch.onnx.export(model, (x_test[:1],), str(out), input_names=["signal"], output_names=["logits"],
                          opset_version=17, dynamo=False)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
