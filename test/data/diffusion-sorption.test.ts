import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { materialize } from '../../src/data/dataset.js';
import {
  DATASET_STEPPING,
  type DiffusionSorptionSolution,
  diffusionSorptionDataset,
  type InitialCondition,
  initialProfile,
  PDEBENCH_SORPTION,
  randomInitialCondition,
  retardation,
  solveDiffusionSorption,
  totalConcentration,
} from '../../src/data/diffusion-sorption.js';
import { createRandom } from '../../src/data/random.js';

const D = PDEBENCH_SORPTION.diffusivity;
const IC: InitialCondition = { level: 0.1, amplitudes: [0.03, -0.02, 0.01] };
const u0 = (x: number) => initialProfile(IC, x);
/** output times for the accuracy checks: late enough for the t = 0 boundary mismatch to have smoothed */
const CHECK_TIMES = [0, 25, 50, 100, 250, 500];

/** Cell averages of a fine cell-centred solution over blocks of `factor` cells. */
function coarsen(fine: Float64Array, factor: number): Float64Array {
  const out = new Float64Array(fine.length / factor);
  for (let i = 0; i < out.length; i++) {
    for (let j = 0; j < factor; j++) out[i] += fine[i * factor + j] / factor;
  }
  return out;
}

function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let largest = 0;
  for (let i = 0; i < a.length; i++) largest = Math.max(largest, Math.abs(a[i] - b[i]));
  return largest;
}

/** max over the output times k >= 1 of the max-norm difference to `reference` (cell-averaged). */
function errorAgainst(coarse: DiffusionSorptionSolution, reference: DiffusionSorptionSolution): number {
  const factor = reference.x.length / coarse.x.length;
  let largest = 0;
  for (let k = 1; k < coarse.times.length; k++) {
    largest = Math.max(largest, maxDifference(coarse.u[k], coarsen(reference.u[k], factor)));
  }
  return largest;
}

/**
 * The independent second discretisation: method of lines on the NON-conservative form
 * u_t = D/R(u) u_xx, vertex-centred (nodes x_j = j/M, u_0 = 1), the outflow condition u = −D u_x at
 * x = 1 through a centred ghost node u_{M+1} = u_{M−1} − 2h u_M/D, classical RK4 with a fixed small step.
 * Returns u at `times` on the nodes.
 */
function finiteDifferenceRk4(intervals: number, times: number[], dt: number): Float64Array[] {
  const h = 1 / intervals;
  const nodes = intervals + 1;
  // R written out from the PDEBench formula, independently of the solver's code
  const { porosity, solidDensity, freundlichK, freundlichN } = PDEBENCH_SORPTION;
  const factor = ((1 - porosity) / porosity) * solidDensity * freundlichK * freundlichN;
  const R = (u: number) => 1 + factor * (Math.max(u, 0) + 1e-6) ** (freundlichN - 1);
  const rate = (u: Float64Array, out: Float64Array) => {
    out[0] = 0; // Dirichlet node
    for (let j = 1; j < nodes; j++) {
      const right = j === intervals ? u[j - 1] - (2 * h * u[j]) / D : u[j + 1];
      out[j] = ((D / R(u[j])) * (u[j - 1] - 2 * u[j] + right)) / (h * h);
    }
  };
  let u = Float64Array.from({ length: nodes }, (_, j) =>
    j === 0 ? PDEBENCH_SORPTION.inflowConcentration : u0(j * h),
  );
  const k1 = new Float64Array(nodes);
  const k2 = new Float64Array(nodes);
  const k3 = new Float64Array(nodes);
  const k4 = new Float64Array(nodes);
  const stage = new Float64Array(nodes);
  const out: Float64Array[] = [u.slice()];
  let t = 0;
  for (const target of times.slice(1)) {
    const count = Math.ceil((target - t) / dt - 1e-9);
    const step = (target - t) / count;
    for (let s = 0; s < count; s++) {
      rate(u, k1);
      for (let j = 0; j < nodes; j++) stage[j] = u[j] + 0.5 * step * k1[j];
      rate(stage, k2);
      for (let j = 0; j < nodes; j++) stage[j] = u[j] + 0.5 * step * k2[j];
      rate(stage, k3);
      for (let j = 0; j < nodes; j++) stage[j] = u[j] + step * k3[j];
      rate(stage, k4);
      const next = new Float64Array(nodes);
      for (let j = 0; j < nodes; j++) next[j] = u[j] + (step / 6) * (k1[j] + 2 * k2[j] + 2 * k3[j] + k4[j]);
      u = next;
    }
    t = target;
    out.push(u.slice());
  }
  return out;
}

/** Value and slope at the end point `edge` of the parabola through three cell values at x0, x1, x2. */
function extrapolate(xs: number[], us: number[], edge: number): { value: number; slope: number } {
  const [x0, x1, x2] = xs;
  const [a, b, c] = us;
  // Lagrange form and its derivative
  const l0 = ((edge - x1) * (edge - x2)) / ((x0 - x1) * (x0 - x2));
  const l1 = ((edge - x0) * (edge - x2)) / ((x1 - x0) * (x1 - x2));
  const l2 = ((edge - x0) * (edge - x1)) / ((x2 - x0) * (x2 - x1));
  const d0 = (2 * edge - x1 - x2) / ((x0 - x1) * (x0 - x2));
  const d1 = (2 * edge - x0 - x2) / ((x1 - x0) * (x1 - x2));
  const d2 = (2 * edge - x0 - x1) / ((x2 - x0) * (x2 - x1));
  return { value: a * l0 + b * l1 + c * l2, slope: a * d0 + b * d1 + c * d2 };
}

describe('diffusion-sorption solver', () => {
  it('uses C(u) with C′(u) = R(u) (regularised at u + 1e-6) and the PDEBench constants', () => {
    // R at u = 1: 1 + (0.71/0.29) 2880 3.5e-4 0.874 (1 + 1e-6)^(-0.126), computed by hand
    const K = (0.71 / 0.29) * 2880 * 3.5e-4;
    assert.ok(Math.abs(retardation(1) - (1 + K * 0.874 * (1 + 1e-6) ** -0.126)) < 1e-12);
    assert.equal(totalConcentration(0), 0);
    for (const u of [1e-7, 1e-4, 0.01, 0.2, 0.7, 1]) {
      const h = 1e-4 * u;
      const slope = (totalConcentration(u + h) - totalConcentration(u - h)) / (2 * h);
      assert.ok(Math.abs(slope / retardation(u) - 1) < 1e-6, `C'(${u}) = ${slope}, R = ${retardation(u)}`);
    }
  });

  it('conserves mass: Δ∫C dx equals the time-integrated boundary fluxes', () => {
    const random = createRandom(11);
    let worst = 0;
    for (const [cells, ic] of [
      [128, IC],
      [64, randomInitialCondition(random)],
      [256, { level: 0, amplitudes: [] }],
    ] as const) {
      const s = solveDiffusionSorption({ initial: (x) => initialProfile(ic, x), cells, maxStep: 1 });
      const dx = 1 / cells;
      const mass0 = s.u[0].reduce((sum, v) => sum + dx * totalConcentration(v), 0);
      for (let k = 1; k < s.times.length; k++) {
        // ∫C dx recomputed here from u, independently of the solver's own bookkeeping
        const mass = s.u[k].reduce((sum, v) => sum + dx * totalConcentration(v), 0);
        const exchanged = s.inflow[k] - s.outflow[k];
        const error = Math.abs(mass - mass0 - exchanged) / (s.inflow[k] + s.outflow[k]);
        worst = Math.max(worst, error);
      }
      assert.ok(s.inflow.at(-1)! > 0 && s.outflow.at(-1)! > 0, 'mass enters at x = 0 and leaves at x = 1');
    }
    console.log(`  mass balance: worst relative error ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-10, `relative mass-balance error ${worst}`);
  });

  it('converges under grid refinement (second order in space, same time steps)', () => {
    const options = { initial: u0, outputTimes: CHECK_TIMES, maxStep: 0.5, grading: 0.05 };
    const reference = solveDiffusionSorption({ ...options, cells: 1024 });
    const errors = [32, 64, 128].map((cells) =>
      errorAgainst(solveDiffusionSorption({ ...options, cells }), reference),
    );
    const orders = [Math.log2(errors[0] / errors[1]), Math.log2(errors[1] / errors[2])];
    console.log(
      `  space: max error N=32,64,128 ${errors.map((e) => e.toExponential(2)).join(', ')};` +
        ` observed order ${orders.map((o) => o.toFixed(2)).join(', ')}`,
    );
    for (const order of orders) assert.ok(order > 1.6, `observed order ${order}`);
  });

  it('converges under time-step refinement (second order: BDF2)', () => {
    const options = { initial: u0, outputTimes: CHECK_TIMES, cells: 64 };
    const reference = solveDiffusionSorption({ ...options, maxStep: 0.05, grading: 0.0025 });
    const errors = [4, 2, 1].map((maxStep) =>
      errorAgainst(solveDiffusionSorption({ ...options, maxStep, grading: maxStep / 20 }), reference),
    );
    const orders = [Math.log2(errors[0] / errors[1]), Math.log2(errors[1] / errors[2])];
    console.log(
      `  time: max error dt=4,2,1 ${errors.map((e) => e.toExponential(2)).join(', ')};` +
        ` observed order ${orders.map((o) => o.toFixed(2)).join(', ')}`,
    );
    for (const order of orders) assert.ok(order > 1.6, `observed order ${order}`);
  });

  it('agrees with an independent finite-difference RK4 solution of the non-conservative form', () => {
    const reference = solveDiffusionSorption({
      initial: u0,
      cells: 1024,
      outputTimes: CHECK_TIMES,
      maxStep: 0.5,
    });
    const coarse = solveDiffusionSorption({ initial: u0, cells: 32, outputTimes: CHECK_TIMES, maxStep: 0.5 });
    // Interior FD nodes j/M are faces of the 1024-cell reference: compare with the mean of both sides.
    const fdError = (fd: Float64Array[], intervals: number) => {
      const stride = 1024 / intervals;
      let largest = 0;
      for (let k = 1; k < CHECK_TIMES.length; k++) {
        for (let j = 1; j < intervals; j++) {
          const exact = (reference.u[k][j * stride - 1] + reference.u[k][j * stride]) / 2;
          largest = Math.max(largest, Math.abs(fd[k][j] - exact));
        }
      }
      return largest;
    };
    const fd32 = finiteDifferenceRk4(32, CHECK_TIMES, 0.05);
    const fd64 = finiteDifferenceRk4(64, CHECK_TIMES, 0.02);
    const fdErrors = [fdError(fd32, 32), fdError(fd64, 64)];
    const fdOrder = Math.log2(fdErrors[0] / fdErrors[1]);
    // the FD nodes j/64 with odd j are the centres of the 32 cells: compare there directly
    let difference = 0;
    for (let k = 1; k < CHECK_TIMES.length; k++) {
      const fdAtCentres = Float64Array.from({ length: 32 }, (_, i) => fd64[k][2 * i + 1]);
      difference = Math.max(difference, maxDifference(coarse.u[k], fdAtCentres));
    }
    const fvError = errorAgainst(coarse, reference);
    console.log(
      `  FD-RK4 vs FV(1024): max error M=32,64 ${fdErrors.map((e) => e.toExponential(2)).join(', ')},` +
        ` order ${fdOrder.toFixed(2)}; FV(32) vs FD(64) at the cell centres: ${difference.toExponential(2)}` +
        ` (FV(32) error ${fvError.toExponential(2)})`,
    );
    // the independent scheme converges to the FV reference at its own second order, ...
    assert.ok(fdOrder > 1.6, `FD order ${fdOrder}`);
    assert.ok(fdErrors[1] < 2e-3, `FD error ${fdErrors[1]}`);
    // ... and on a coarse grid the two differ by no more than their discretisation errors
    assert.ok(difference <= fvError + fdErrors[1], `difference ${difference}`);
  });

  it('holds u(0, t) = 1 and the outflow condition u(1, t) = −D u_x(1, t)', () => {
    const cells = 512;
    const s = solveDiffusionSorption({ initial: u0, cells, outputTimes: CHECK_TIMES, maxStep: 0.5 });
    const x = Array.from(s.x);
    let worstDirichlet = 0;
    let worstCauchy = 0;
    for (let k = 1; k < s.times.length; k++) {
      const u = s.u[k];
      const left = extrapolate(x.slice(0, 3), [u[0], u[1], u[2]], 0);
      worstDirichlet = Math.max(worstDirichlet, Math.abs(left.value - 1));
      const right = extrapolate(x.slice(-3), [u[cells - 3], u[cells - 2], u[cells - 1]], 1);
      // residual of u + D u_x = 0, relative to the size of its terms
      worstCauchy = Math.max(
        worstCauchy,
        Math.abs(right.value + D * right.slope) / (D * Math.abs(right.slope)),
      );
      assert.ok(right.slope < 0, 'the profile falls towards the outlet');
      // the solver's own face value agrees with the extrapolated one
      assert.ok(Math.abs(s.outflowValue[k] - right.value) < 0.05 * right.value);
    }
    console.log(
      `  boundaries (N=${cells}, quadratic extrapolation): |u(0)-1| <= ${worstDirichlet.toExponential(2)},` +
        ` |u(1)+D u_x(1)|/|D u_x(1)| <= ${worstCauchy.toExponential(2)}`,
    );
    assert.ok(worstDirichlet < 1e-3, `u(0) off by ${worstDirichlet}`);
    assert.ok(worstCauchy < 0.05, `Cauchy residual ${worstCauchy}`);
  });

  it('keeps 0 <= u <= 1', () => {
    const random = createRandom(5);
    const ics: InitialCondition[] = [
      { level: 0, amplitudes: [] },
      { level: 0.2, amplitudes: [] },
      ...Array.from({ length: 4 }, () => randomInitialCondition(random, 3)),
    ];
    let low = Number.POSITIVE_INFINITY;
    let high = Number.NEGATIVE_INFINITY;
    for (const ic of ics) {
      for (const [cells, maxStep] of [
        [48, 2],
        [128, 0.5],
      ]) {
        const s = solveDiffusionSorption({ initial: (x) => initialProfile(ic, x), cells, maxStep });
        for (const u of s.u) {
          for (const v of u) {
            low = Math.min(low, v);
            high = Math.max(high, v);
          }
        }
      }
    }
    console.log(`  bounds: min u ${low.toExponential(2)}, max u ${high}`);
    assert.ok(low >= -1e-12 && high <= 1 + 1e-12, `u in [${low}, ${high}]`);
  });

  it('rejects bad input', () => {
    assert.throws(() => solveDiffusionSorption({ initial: [0.1, -0.1, 0.1] }), /cell 1/);
    assert.throws(() => solveDiffusionSorption({ initial: u0, cells: 8, outputTimes: [1, 2] }), /start at 0/);
  });
});

describe('diffusion-sorption data set', () => {
  const options = { trajectories: 6, cells: 64, samplesPerTrajectory: 2000, seed: 3, split: 1 / 6 };

  it('has the documented shapes, ranges and solver values', async () => {
    const data = diffusionSorptionDataset(options);
    assert.equal(data.train.samples, 5 * 2000);
    assert.equal(data.test.samples, 2000);
    assert.equal(data.train.features, 6);
    assert.deepEqual(data.featureNames, ['x', 't', 'level', 'a1', 'a2', 'a3']);
    assert.equal(data.train.targetKind, 'values');
    const { x, y } = await materialize(data.train);
    assert.equal(y?.kind === 'values' && y.values.cols, 1);
    for (let r = 0; r < x.rows; r++) {
      const row = x.data.subarray(r * 6, r * 6 + 6);
      assert.ok(row[0] > 0 && row[0] < 1 && row[1] >= 0 && row[1] <= 1 && row[2] >= 0 && row[2] <= 1);
      for (const a of row.subarray(3)) assert.ok(Math.abs(a) <= 1);
    }
    // targets are the solver's values for the initial condition read back from the (float32) features
    const row = x.data.subarray(0, 6);
    const ic = { level: row[2] * 0.2, amplitudes: [row[3] * 0.05, (row[4] * 0.05) / 2, (row[5] * 0.05) / 3] };
    const s = solveDiffusionSorption({
      initial: (xi) => initialProfile(ic, xi),
      cells: 64,
      ...DATASET_STEPPING,
    });
    const level = Math.round(row[1] * 100);
    const cell = Math.round(row[0] * 64 - 0.5);
    const target = y?.kind === 'values' ? y.values.data[0] : Number.NaN;
    assert.ok(Math.abs(s.u[level][cell] - target) < 1e-6, `${s.u[level][cell]} vs ${target}`);
  });

  it('adds training noise of the requested std and leaves the test targets clean', async () => {
    const clean = diffusionSorptionDataset(options);
    const noisy = diffusionSorptionDataset({ ...options, noise: 0.05 });
    const a = await materialize(clean.train);
    const b = await materialize(noisy.train);
    assert.deepEqual(b.x.data, a.x.data, 'noise does not change which samples are drawn');
    const ya = a.y?.kind === 'values' ? a.y.values.data : new Float32Array();
    const yb = b.y?.kind === 'values' ? b.y.values.data : new Float32Array();
    const std = (v: ArrayLike<number>) => {
      let mean = 0;
      for (let i = 0; i < v.length; i++) mean += v[i] / v.length;
      let sum = 0;
      for (let i = 0; i < v.length; i++) sum += (v[i] - mean) ** 2;
      return Math.sqrt(sum / v.length);
    };
    const residual = Float64Array.from(yb, (v, i) => v - ya[i]);
    const requested = 0.05 * std(ya);
    console.log(
      `  noise: requested std ${requested.toExponential(3)}, measured ${std(residual).toExponential(3)}`,
    );
    assert.ok(Math.abs(noisy.noiseStd / requested - 1) < 1e-6);
    assert.ok(Math.abs(std(residual) / requested - 1) < 0.03);
    assert.deepEqual((await materialize(noisy.test)).y, (await materialize(clean.test)).y);
  });

  it('is reproducible from its seed', async () => {
    const first = await materialize(diffusionSorptionDataset({ ...options, noise: 0.01 }).train);
    const again = await materialize(diffusionSorptionDataset({ ...options, noise: 0.01 }).train);
    const other = await materialize(diffusionSorptionDataset({ ...options, noise: 0.01, seed: 4 }).train);
    assert.deepEqual(again, first);
    assert.notDeepEqual(other.x.data, first.x.data);
  });
});
