#!/usr/bin/env python3
"""Export the two raw torch recurrent models of tests/data/torch_rnn/ (torch only here, never in CI):
nn.LSTM / nn.GRU(10, 16, batch_first=True) -> the last step -> nn.Linear(16, 4), random weights
(seed 0), input [1, 12, 10], exported by torch.onnx.export (opset 13, the TorchScript exporter) and
written as it is: the zero initial states as Expand(Constant, Concat(Shape(x), ..)) and the last
step as a Gather by a scalar index, as users' exports arrive (the zoo's are constant-folded).

    /tmp/torchenv/bin/python scripts/export_torch_rnn.py     # (build_zoo.py's torch environment)
"""
from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "torch_rnn"


class Net(nn.Module):
    def __init__(self, cell: str):
        super().__init__()
        self.rnn = getattr(nn, cell)(10, 16, batch_first=True)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for cell in ("LSTM", "GRU"):
        torch.manual_seed(0)
        torch.onnx.export(Net(cell).eval(), torch.randn(1, 12, 10), OUT / f"{cell.lower()}.onnx", opset_version=13,
                          dynamo=False, input_names=["x"], output_names=["y"])
