#!/usr/bin/python3
"""EC statistics and scores in PyTorch: the reference that bench/run.ts times ecprune against.

The same computation as src/score/statistics.ts + src/score/ec.ts + src/compensate/delta.ts
(see docs/METHOD.md), streamed over batches of `--batch-size` samples:

  forward     z_l = a_{l-1} W_lᵀ + b_l, a_l = act(z_l), keeping a_{l-1} and act'(z_l)
  sensitivity one backward pass with K one-hot cotangents per sample, batched as a (B·K × n_l)
              cotangent matrix (exactly like ecprune), s_l = Σ_k g²  (B × n_l)
  statistics  per layer one GEMM  S_lᵀ [A−c | (A−c)²]  (n_l × 2 n_{l−1}), m0 = Σ_n S_l,
              summed across batches in float64; c = mean of the first batch's a_{l−1}
  select      I = w² (M2 − M1²/m0) / N,  Δ = w (M1/m0 + c)  (float64, the same rounding floor)

Backends for the GEMMs (`--backend`):
  mm      torch.mm / torch.addmm, i.e. whatever BLAS libtorch is linked against (Debian's
          python3-torch uses the system libblas.so.3: the netlib reference BLAS unless an optimised
          one such as libopenblas0 is installed or put on LD_LIBRARY_PATH)
  onednn  the oneDNN (MKL-DNN) inner-product kernel bundled with libtorch, through
          torch._C._nn.mkldnn_linear (x Wᵀ on plain 2-D tensors), independent of the system BLAS

Methods (`--method`):
  batched   the explicit (B·K × n_l) cotangent matrix, as ecprune does (both backends)
  autograd  torch.autograd.grad(..., is_grads_batched=True): autograd's vmap over K one-hot
            cotangents (backend mm only: autograd's GEMMs go through torch.mm)

Only the streaming loop is timed (reading each batch from the memory-mapped .npy, which is in the
page cache, is timed separately as `read`); importing torch, loading the weights and writing the
outputs are not. Prints one JSON object on stdout.

Files: --model DIR holds arch.json ({"activations": ["relu", ..., "identity"]}) and W{l}.npy /
b{l}.npy (float32, W n_out × n_in as torch.nn.Linear). --out DIR receives I{l}.npy and D{l}.npy
(n_out × n_in, float32; float64 with --dtype float64) from the last timed run.
"""

import argparse
import json
import os
import statistics as stats_mod
import sys
import time

import numpy as np
import torch

ROUNDING_FLOOR = 1e-5


class MmGemm:
    name = 'mm'

    def prepare_weight(self, w):
        return w

    def linear(self, a, w, b):
        """a wᵀ + b (a: m × k, w: n × k)"""
        return torch.addmm(b, a, w.t()) if b is not None else torch.mm(a, w.t())

    def mm(self, a, b):
        return torch.mm(a, b)

    def tn(self, a, b):
        """aᵀ b"""
        return torch.mm(a.t(), b)


class OneDnnGemm:
    """GEMMs through oneDNN's inner product (the kernel behind torch.utils.mkldnn's Linear)."""

    name = 'onednn'

    def __init__(self):
        self._weights = {}

    def _lin(self, a, w, b=None):
        # a: dense m × k (converted), w: dense or mkldnn n × k
        return torch._C._nn.mkldnn_linear(a.contiguous().to_mkldnn(), w, b).to_dense()

    def prepare_weight(self, w):
        return w

    def linear(self, a, w, b):
        return self._lin(a, w, b)

    def mm(self, a, b):
        # a b = lin(a, bᵀ); the weights' transposes are cached (they are reused every batch)
        key = (b.data_ptr(), tuple(b.shape))
        bt = self._weights.get(key)
        if bt is None:
            bt = b.t().contiguous()
            self._weights[key] = bt
        return self._lin(a, bt)

    def tn(self, a, b):
        # aᵀ b = lin(aᵀ, bᵀ)
        return self._lin(a.t().contiguous(), b.t().contiguous())


def load_model(model_dir, dtype=torch.float32):
    with open(os.path.join(model_dir, 'arch.json')) as f:
        arch = json.load(f)
    layers = []
    for l, act in enumerate(arch['activations']):
        w = torch.from_numpy(np.load(os.path.join(model_dir, f'W{l}.npy'))).to(dtype)
        b = torch.from_numpy(np.load(os.path.join(model_dir, f'b{l}.npy'))).to(dtype)
        if act not in ('relu', 'identity'):
            raise SystemExit(f'ec_torch.py: activation {act} not supported (relu, identity)')
        layers.append((w.contiguous(), b.contiguous(), act))
    return layers


class Clock:
    def __init__(self):
        self.phases = {}

    def add(self, phase, seconds):
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds


def new_stats(layers):
    return [
        {
            'm0': torch.zeros(w.shape[0], dtype=torch.float64),
            'M': torch.zeros(w.shape[0], 2 * w.shape[1], dtype=torch.float64),
            'c': None,
        }
        for (w, _, _) in layers
    ]


def accumulate(st, s, a, gemm):
    """st.M += Sᵀ [A−c | (A−c)²], st.m0 += Σ_n S (one GEMM per layer)."""
    if st['c'] is None:
        st['c'] = a.double().mean(0)
    d = a - st['c'].to(a.dtype)
    centred = torch.cat([d, d * d], dim=1)
    st['M'] += gemm.tn(s, centred).double()
    st['m0'] += s.double().sum(0)


def batched_pass(layers, x, gemm, stats, clock):
    t = time.perf_counter()
    inputs, derivs = [], []
    a = x
    for w, b, act in layers:
        inputs.append(a)
        z = gemm.linear(a, w, b)
        if act == 'relu':
            derivs.append((z > 0).to(z.dtype))
            a = torch.relu(z)
        else:
            derivs.append(None)
            a = z
    t1 = time.perf_counter()
    clock.add('forward', t1 - t)

    batch = x.shape[0]
    K = layers[-1][0].shape[0]
    g = torch.eye(K, dtype=x.dtype).repeat(batch, 1)  # (B·K × K) one-hot, row n·K + k is e_k
    stat_time = 0.0
    for l in range(len(layers) - 1, -1, -1):
        n = g.shape[1]
        g3 = g.view(batch, K, n)
        if derivs[l] is not None:
            g3.mul_(derivs[l][:, None, :])  # in place: g is this batch's own (GEMM output / one-hot)
        s = (g3 * g3).sum(1)  # B × n_l
        ts = time.perf_counter()
        accumulate(stats[l], s, inputs[l], gemm)
        stat_time += time.perf_counter() - ts
        if l > 0:
            g = gemm.mm(g, layers[l][0])  # (B·K × n_l)(n_l × n_{l−1})
    t2 = time.perf_counter()
    clock.add('sensitivity', t2 - t1 - stat_time)
    clock.add('statistics', stat_time)


def autograd_pass(layers, x, gemm, stats, clock):
    t = time.perf_counter()
    inputs, zs = [], []
    with torch.enable_grad():
        a = x.detach().requires_grad_()  # so the pre-activations are in the graph (x's gradient is not computed)
        for w, b, act in layers:
            inputs.append(a.detach())
            z = torch.addmm(b, a, w.t())
            zs.append(z)
            a = torch.relu(z) if act == 'relu' else z
        t1 = time.perf_counter()
        clock.add('forward', t1 - t)
        batch = x.shape[0]
        K = layers[-1][0].shape[0]
        onehot = torch.eye(K, dtype=x.dtype)[:, None, :].expand(K, batch, K)  # K cotangents, each B × K
        grads = torch.autograd.grad(a, zs, onehot, is_grads_batched=True)  # each K × B × n_l
    sens = [(g * g).sum(0) for g in grads]
    t2 = time.perf_counter()
    clock.add('sensitivity', t2 - t1)
    with torch.no_grad():
        for l in range(len(layers)):
            accumulate(stats[l], sens[l], inputs[l], gemm)
    clock.add('statistics', time.perf_counter() - t2)


def finish(layers, stats, samples):
    importance, delta = [], []
    for (w, _, _), st in zip(layers, stats):
        n_in = w.shape[1]
        m0 = st['m0'][:, None]
        m1 = st['M'][:, :n_in]
        m2 = st['M'][:, n_in:]
        w64 = w.double()
        live = m0 != 0
        safe = torch.where(live, m0, torch.ones_like(m0))
        variance = m2 - m1 * m1 / safe
        keep = live & (variance > ROUNDING_FLOOR * m2)
        importance.append(torch.where(keep, w64 * w64 * variance / samples, torch.zeros_like(m2)))
        mean = m1 / safe + st['c'][None, :]
        keep_d = live & (mean.abs() > ROUNDING_FLOOR * st['c'].abs()[None, :])
        delta.append(torch.where(keep_d, w64 * mean, torch.zeros_like(m1)))
    return importance, delta


def run_once(layers, data, batch_size, gemm, method, dtype=torch.float32):
    clock = Clock()
    stats = new_stats(layers)
    start = time.perf_counter()
    samples = data.shape[0]
    passes = batched_pass if method == 'batched' else autograd_pass
    with torch.no_grad():
        for first in range(0, samples, batch_size):
            tr = time.perf_counter()
            x = torch.from_numpy(np.array(data[first : first + batch_size], dtype=np.float32)).to(dtype)  # a copy
            clock.add('read', time.perf_counter() - tr)
            passes(layers, x, gemm, stats, clock)
        ts = time.perf_counter()
        importance, delta = finish(layers, stats, samples)
        clock.add('select', time.perf_counter() - ts)
    total = time.perf_counter() - start
    return total, clock.phases, importance, delta


def loaded_blas():
    """The BLAS / oneDNN libraries mapped into this process (what torch.mm really calls)."""
    libs = set()
    try:
        with open('/proc/self/maps') as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ''
                base = os.path.basename(path)
                if any(k in base for k in ('blas', 'mkl', 'dnnl', 'blis')):
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(libs)


def gemm_peak(gemm, size, repeats):
    a = torch.rand(size, size)
    b = torch.rand(size, size)
    best = float('inf')
    for _ in range(repeats):
        t = time.perf_counter()
        gemm.linear(a, b, None)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', help='folder with arch.json, W{l}.npy, b{l}.npy')
    p.add_argument('--data', help='N × n_0 float32 .npy')
    p.add_argument('--batch-size', type=int, default=1000)
    p.add_argument('--backend', choices=['mm', 'onednn'], default='onednn')
    p.add_argument('--method', choices=['batched', 'autograd'], default='batched')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--warmup', type=int, default=1, help='untimed runs first (on at most 2 batches)')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--out', help='folder for I{l}.npy and D{l}.npy')
    p.add_argument('--peak', type=int, default=0, help='only measure a square GEMM of this size')
    p.add_argument(
        '--dtype',
        choices=['float32', 'float64'],
        default='float32',
        help='float64: a high-precision reference for the agreement check (backend mm only)',
    )
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    gemm = OneDnnGemm() if args.backend == 'onednn' else MmGemm()
    info = {
        'torch': torch.__version__,
        'numpy': np.__version__,
        'python': sys.version.split()[0],
        'threads': torch.get_num_threads(),
        'backend': args.backend,
        'method': args.method,
    }
    if args.peak:
        info['peak_gflops'] = gemm_peak(gemm, args.peak, max(args.repeats, 5))
        info['libraries'] = loaded_blas()
        print(json.dumps(info))
        return
    if args.method == 'autograd' and args.backend != 'mm':
        raise SystemExit('ec_torch.py: --method autograd needs --backend mm')
    dtype = torch.float64 if args.dtype == 'float64' else torch.float32
    if dtype == torch.float64 and args.backend != 'mm':
        raise SystemExit('ec_torch.py: --dtype float64 needs --backend mm')
    info['dtype'] = args.dtype

    layers = load_model(args.model, dtype)
    data = np.load(args.data, mmap_mode='r')
    for _ in range(args.warmup):
        run_once(layers, data[: 2 * args.batch_size], args.batch_size, gemm, args.method, dtype)
    runs = []
    for _ in range(args.repeats):
        total, phases, importance, delta = run_once(layers, data, args.batch_size, gemm, args.method, dtype)
        runs.append({'total_s': total, 'phases_s': phases})
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for l, (i, d) in enumerate(zip(importance, delta)):
            # float64 runs keep float64 (the reference); float32 runs write float32
            np.save(os.path.join(args.out, f'I{l}.npy'), i.to(dtype).numpy())
            np.save(os.path.join(args.out, f'D{l}.npy'), d.to(dtype).numpy())
    totals = [r['total_s'] for r in runs]
    median_index = sorted(range(len(runs)), key=lambda i: totals[i])[len(runs) // 2]
    info.update(
        {
            'samples': int(data.shape[0]),
            'batch_size': args.batch_size,
            'runs_s': totals,
            'median_s': stats_mod.median(totals),
            'median_phases_s': runs[median_index]['phases_s'],
            'libraries': loaded_blas(),
        }
    )
    print(json.dumps(info))


if __name__ == '__main__':
    main()
