"""Trains the panel's networks the way users build them and exports each with torch.onnx.export.

Run by `npm run panel` (bench/panel/run.ts) with Debian's /usr/bin/python3 (python3-torch, python3-onnx):
    /usr/bin/python3 bench/panel/train_panel.py <data dir> <model dir>
<data dir>/<set>/{x,y}_{train,test}.npy are written by bench/panel/data.ts (ecprune's built-in sets);
the tabular set is synthesised here. For every data set the script writes calib.npy (1,000 training
samples, evenly spaced over the training set: the calibration slice a user passes to --calib).
A network whose .onnx exists is not trained again. <model dir>/manifest.json lists every network:
name, data set, task, what varies, and the training recipe. This list is the panel: edit it here.
"""
import json
import os
import sys

import numpy as np
import torch
from torch import nn

CALIBRATION_SAMPLES = 1000

# the base recipe of issue #14: nn.Sequential 784-256-128-10 ReLU, Adam lr 1e-3, batch 64, 4 epochs
BASE = dict(layers=[256, 128], act='relu', epochs=4, opt='adam', wd=0.0, dropout=0.0, seed=0,
            graph='chain', lr=1e-3)


def net(name, data, **changes):
    return dict(BASE, name=name, data=data, **changes)


PANEL = [
    net('mnist-base', 'mnist'),
    net('mnist-e15', 'mnist', epochs=15),
    net('mnist-e40', 'mnist', epochs=40),
    net('mnist-narrow', 'mnist', layers=[64]),
    net('mnist-deep', 'mnist', layers=[256, 256, 128, 64]),
    net('mnist-tanh', 'mnist', act='tanh'),
    net('mnist-batchnorm', 'mnist', graph='batchnorm'),
    net('mnist-softmax', 'mnist', graph='softmax'),
    net('mnist-residual', 'mnist', graph='residual', layers=[256, 256]),
    net('fashion-base', 'fashion-mnist'),
    net('fashion-e15-gelu', 'fashion-mnist', act='gelu', epochs=15),
    net('fashion-adamw-dropout', 'fashion-mnist', opt='adamw', wd=0.05, dropout=0.2, epochs=15),
    net('tabular-relu', 'tabular', layers=[64, 64], epochs=15),
    net('tabular-tanh', 'tabular', layers=[128, 64, 32], act='tanh', epochs=40, opt='adamw', wd=0.01),
    net('sorption-tanh', 'diffusion-sorption', layers=[64, 64], act='tanh', epochs=30),
    net('sorption-gelu', 'diffusion-sorption', layers=[128, 128, 64], act='gelu', epochs=30),
]

ACTIVATIONS = {'relu': nn.ReLU, 'tanh': nn.Tanh, 'gelu': nn.GELU}


def tabular(dir):
    """A synthetic tabular classification set: 20 standardised features (correlated linear mixes of
    8 latent factors, plus 4 noise columns), 5 classes from a random tanh teacher; 10,000 / 2,000."""
    os.makedirs(dir, exist_ok=True)
    if os.path.exists(os.path.join(dir, 'y_test.npy')):
        return
    rng = np.random.default_rng(2026)
    n = 12000
    latent = rng.standard_normal((n, 8))
    mixing = rng.standard_normal((8, 16))
    x = np.concatenate([latent @ mixing + 0.3 * rng.standard_normal((n, 16)), rng.standard_normal((n, 4))], 1)
    teacher = np.tanh(latent @ rng.standard_normal((8, 32))) @ rng.standard_normal((32, 5))
    y = teacher.argmax(1).astype(np.int32)
    x = ((x - x[:10000].mean(0)) / x[:10000].std(0)).astype(np.float32)
    for split, rows in (('train', slice(0, 10000)), ('test', slice(10000, n))):
        np.save(os.path.join(dir, f'x_{split}.npy'), x[rows])
        np.save(os.path.join(dir, f'y_{split}.npy'), y[rows])


class Residual(nn.Module):
    """x -> h = act(W1 x); h + act(W2 h) -> W3: one residual block between two Linear layers."""

    def __init__(self, d_in, width, d_out, act):
        super().__init__()
        self.inp, self.block, self.out, self.act = nn.Linear(d_in, width), nn.Linear(width, width), \
            nn.Linear(width, d_out), act()

    def forward(self, x):
        h = self.act(self.inp(x))
        return self.out(h + self.act(self.block(h)))


def build(spec, d_in, d_out):
    act = ACTIVATIONS[spec['act']]
    if spec['graph'] == 'residual':
        return Residual(d_in, spec['layers'][0], d_out, act)
    mods, width = [], d_in
    for hidden in spec['layers']:
        mods.append(nn.Linear(width, hidden))
        if spec['graph'] == 'batchnorm':
            mods.append(nn.BatchNorm1d(hidden))
        mods.append(act())
        if spec['dropout'] > 0:
            mods.append(nn.Dropout(spec['dropout']))
        width = hidden
    mods.append(nn.Linear(width, d_out))
    if spec['graph'] == 'softmax':
        mods.append(nn.Softmax(dim=1))
    return nn.Sequential(*mods)


def train(spec, data_dir, out):
    torch.manual_seed(spec['seed'])
    x = torch.from_numpy(np.load(os.path.join(data_dir, 'x_train.npy')))
    y_np = np.load(os.path.join(data_dir, 'y_train.npy'))
    classify = y_np.dtype.kind in 'iu'
    y = torch.from_numpy(y_np.astype(np.int64) if classify else y_np.reshape(len(y_np), -1))
    d_out = int(y_np.max()) + 1 if classify else y.shape[1]
    model = build(spec, x.shape[1], d_out)
    make = torch.optim.AdamW if spec['opt'] == 'adamw' else torch.optim.Adam
    optimiser = make(model.parameters(), lr=spec['lr'], weight_decay=spec['wd'])
    model.train()
    for _ in range(spec['epochs']):
        for batch in torch.randperm(len(x)).split(64):
            optimiser.zero_grad()
            out_ = model(x[batch])
            if classify:
                # the softmax head's model is trained on the log of its probabilities
                loss = nn.functional.nll_loss(torch.log(out_ + 1e-12), y[batch]) if spec['graph'] == 'softmax' \
                    else nn.functional.cross_entropy(out_, y[batch])
            else:
                loss = nn.functional.mse_loss(out_, y[batch])
            loss.backward()
            optimiser.step()
    model.eval()
    tmp = out + '.tmp'
    torch.onnx.export(model, x[:2], tmp, input_names=['x'], output_names=['y'],
                      dynamic_axes={'x': {0: 'n'}, 'y': {0: 'n'}}, opset_version=13)
    os.replace(tmp, out)
    return 'classification' if classify else 'regression'


def main(data_root, model_dir):
    torch.set_num_threads(1)
    tabular(os.path.join(data_root, 'tabular'))
    os.makedirs(model_dir, exist_ok=True)
    for name in sorted({spec['data'] for spec in PANEL}):
        d = os.path.join(data_root, name)
        calib = os.path.join(d, 'calib.npy')
        if not os.path.exists(calib):
            x = np.load(os.path.join(d, 'x_train.npy'))
            y = np.load(os.path.join(d, 'y_train.npy'))
            rows = np.linspace(0, len(x) - 1, CALIBRATION_SAMPLES).astype(int)
            np.save(calib, x[rows])
            np.save(os.path.join(d, 'calib_labels.npy'), y[rows])
    manifest = []
    for spec in PANEL:
        data_dir = os.path.join(data_root, spec['data'])
        task = 'classification' if np.load(os.path.join(data_dir, 'y_test.npy')).dtype.kind in 'iu' \
            else 'regression'
        manifest.append(dict(spec, task=task, file=os.path.join(model_dir, spec['name'] + '.onnx'), dir=data_dir))
    # written first, so that bench/panel/run.ts --no-train can prune the networks already trained
    with open(os.path.join(model_dir, 'manifest.json.tmp'), 'w') as f:
        json.dump(manifest, f, indent=1)
    os.replace(os.path.join(model_dir, 'manifest.json.tmp'), os.path.join(model_dir, 'manifest.json'))
    for spec, entry in zip(PANEL, manifest):
        if not os.path.exists(entry['file']):
            print(f"training {spec['name']}", flush=True)
            train(spec, entry['dir'], entry['file'])


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
