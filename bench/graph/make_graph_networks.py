"""Graph networks for timing EC scoring beyond plain chains (issue #11): a residual MLP with
LayerNorm and a CNN head (its convolutions are a frozen prefix), exported by torch.onnx.export as a
user would, with random weights (scoring time does not depend on training), and 10,000 random
1x28x28 inputs. Written to the folder given as the first argument, not committed. Timed by
bench/graph/time-graphs.ts (part of `npm run bench`), which runs this script into its cache; by hand:

  /usr/bin/python3 bench/graph/make_graph_networks.py /tmp/ecprune-graph-bench
  npx tsx src/cli/main.ts score /tmp/ecprune-graph-bench/residual-ln-1024.onnx \
      --calib /tmp/ecprune-graph-bench/digits-10000.npy --timings --quiet -o /tmp/s.npz [--no-graph]
"""
import sys, os
import numpy as np
import torch
from torch import nn

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)


class Residual(nn.Module):
    """784 -> 1024, two pre-norm residual blocks x + fc2(relu(fc1(LayerNorm(x)))), LayerNorm, 10."""

    def __init__(self, width=1024, blocks=2):
        super().__init__()
        self.inp = nn.Linear(784, width)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"norm": nn.LayerNorm(width), "fc1": nn.Linear(width, width), "fc2": nn.Linear(width, width)})
            for _ in range(blocks)
        )
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        x = torch.relu(self.inp(x.view(x.size(0), -1)))
        for b in self.blocks:
            x = x + b["fc2"](torch.relu(b["fc1"](b["norm"](x))))
        return self.out(self.norm(x))


class CnnHead(nn.Module):
    """A small convolutional feature extractor on 1x28x28 digits (the frozen prefix), then 1568-512-10."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc1 = nn.Linear(32 * 7 * 7, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x):
        x = self.features(x).flatten(1)
        return self.fc2(torch.relu(self.fc1(x)))


for name, model, shape in [("residual-ln-1024", Residual(), (1, 784)), ("cnn-head", CnnHead(), (1, 1, 28, 28))]:
    model.eval()
    torch.onnx.export(
        model, torch.zeros(shape), os.path.join(out, f"{name}.onnx"), opset_version=13,
        input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
    )
rng = np.random.default_rng(0)
np.save(os.path.join(out, "digits-10000.npy"), rng.random((10000, 1, 28, 28), dtype=np.float32))
print("wrote", out)
