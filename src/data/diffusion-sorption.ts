/**
 * PDEBench's 1-D diffusion–sorption problem: a solver and a surrogate-regression data set.
 *
 *   R(u) u_t = D u_xx  on x in (0, 1), t in (0, T],   R(u) = 1 + ((1 - phi)/phi) rho_s k n_f u^(n_f - 1)
 *
 * (dissolved contaminant u with Freundlich sorption). Boundaries: u(0, t) = 1 (Dirichlet inflow)
 * and the Cauchy outflow condition at x = 1 (see `outflowFaceFactor` for its sign).
 *
 * Conservative form: R(u) = C'(u) with the total (dissolved + sorbed) concentration
 * C(u) = u + K u^n_f, K = ((1 - phi)/phi) rho_s k, so the PDE is d/dt C(u) = D u_xx. The solver steps C,
 * which makes the discrete mass balance  d/dt ∫C dx = flux in at 0 − flux out at 1  an identity.
 *
 * Discretisation: cell-centred finite volumes (second order in space; the Dirichlet value is imposed
 * on the face x = 0 through the half cell, where PDEBench's simulator puts it at x = −dx/2), and
 * variable-step BDF2 in time on C (second order, L-stable, so the t = 0 mismatch between u0 and the
 * boundary value is damped rather than ringing as with Crank–Nicolson). Each step is one nonlinear
 * tridiagonal system, solved by Newton + the Thomas algorithm. Steps grow geometrically from t = 0
 * up to `maxStep`. BDF2 has no discrete maximum principle (backward Euler would), but the tests find
 * 0 <= u <= 1 to round-off; C and R are continued below u = 0 so that Newton iterates stay finite.
 * Errors measured in test/data/diffusion-sorption.test.ts.
 */
import { EcpruneError } from '../errors.js';
import { matrix } from '../model/matrix.js';
import { type Dataset, inMemoryDataset } from './dataset.js';
import { createRandom, type Random } from './random.js';

export interface SorptionParameters {
  /** D, effective diffusion coefficient */
  readonly diffusivity: number;
  /** phi, porosity */
  readonly porosity: number;
  /** rho_s, dry bulk density */
  readonly solidDensity: number;
  /** k, Freundlich coefficient */
  readonly freundlichK: number;
  /** n_f, Freundlich exponent (< 1 makes R singular at u = 0) */
  readonly freundlichN: number;
  /** u(0, t), the Dirichlet inflow concentration (PDEBench's "solubility") */
  readonly inflowConcentration: number;
  /** R is evaluated at u + regularisation, as PDEBench and FINN do (1e-6) */
  readonly regularisation: number;
}

/** The constants of PDEBench's 1D_diff-sorp data set (configs/diff-sorp.yaml). */
export const PDEBENCH_SORPTION: SorptionParameters = {
  diffusivity: 5e-4,
  porosity: 0.29,
  solidDensity: 2880,
  freundlichK: 3.5e-4,
  freundlichN: 0.874,
  inflowConcentration: 1,
  regularisation: 1e-6,
};

/** PDEBench's time horizon and number of saved time levels. */
export const PDEBENCH_END_TIME = 500;
export const PDEBENCH_TIME_LEVELS = 101;

/**
 * C(u) and R(u) = C'(u) for one parameter set, sharing one power evaluation (the solver's hot loop):
 *
 *   R(u) = 1 + K n_f (u + eps)^(n_f − 1)          (regularised at eps = 1e-6 as PDEBench/FINN do)
 *   C(u) = u + K ((u + eps)^n_f − eps^n_f)         (its antiderivative with C(0) = 0)
 *
 * so C' = R holds exactly with the same regularisation. Below u = 0, where only Newton iterates (and
 * round-off) go, C continues linearly as R(0) u: C¹ and increasing, so Newton stays well defined.
 */
export interface SorptionModel {
  /** sets `c` and `r` to C(u) and R(u) */
  evaluate(u: number): void;
  c: number;
  r: number;
}

export function sorptionModel(p: SorptionParameters = PDEBENCH_SORPTION): SorptionModel {
  const K = ((1 - p.porosity) / p.porosity) * p.solidDensity * p.freundlichK;
  const nf = p.freundlichN;
  const eps = p.regularisation;
  const sorbedAtZero = eps ** nf;
  const retardationAtZero = 1 + K * nf * eps ** (nf - 1);
  return {
    c: 0,
    r: retardationAtZero,
    evaluate(u: number) {
      if (u < 0) {
        this.r = retardationAtZero;
        this.c = retardationAtZero * u;
        return;
      }
      const power = (u + eps) ** (nf - 1);
      this.r = 1 + K * nf * power;
      this.c = u + K * ((u + eps) * power - sorbedAtZero);
    },
  };
}

/** R(u), the retardation factor (see `sorptionModel`). */
export function retardation(u: number, p: SorptionParameters = PDEBENCH_SORPTION): number {
  const model = sorptionModel(p);
  model.evaluate(u);
  return model.r;
}

/** C(u), the total (dissolved + sorbed) concentration (see `sorptionModel`). */
export function totalConcentration(u: number, p: SorptionParameters = PDEBENCH_SORPTION): number {
  const model = sorptionModel(p);
  model.evaluate(u);
  return model.c;
}

/**
 * The outflow boundary. PDEBench's paper writes the Cauchy condition as u(1, t) = D u_x(1, t), but its
 * simulator (sim_diff_sorp.py) sets the ghost value to D (u_{N-1} − u_N)/dx ≈ −D u_x, i.e.
 *
 *   u(1, t) = −D u_x(1, t):  the outflow flux −D u_x(1) equals u(1) ≥ 0.
 *
 * We implement that sign. Taken literally, u = +D u_x makes mass flow *in* at a rate u(1) and the
 * continuous problem has a boundary mode exp(x/D) growing like exp(t/(D R)) — ill-posed, and its
 * discretisation changes character at dx = 2D (the face value below has a pole there).
 *
 * Face value from the one-sided gradient over the half cell: u_f = −D (u_f − u_last)/(dx/2), so
 * u_f = beta u_last with beta = r/(1 + r), r = 2D/dx; the outflow flux is u_f.
 */
function outflowFaceFactor(p: SorptionParameters, dx: number): number {
  const r = (2 * p.diffusivity) / dx;
  return r / (1 + r);
}

export interface DiffusionSorptionOptions {
  /** u(x, 0): values on the cell centres (their count sets `cells`), or a function of x */
  readonly initial: ArrayLike<number> | ((x: number) => number);
  /** number of cells on [0, 1] when `initial` is a function (default 1024, PDEBench's grid) */
  readonly cells?: number;
  /** increasing output times starting at 0 (default 101 levels over [0, 500]) */
  readonly outputTimes?: ArrayLike<number>;
  /** largest time step (default 0.25; each output interval is split into equal steps) */
  readonly maxStep?: number;
  /** step growth near t = 0: dt <= grading × t, starting from 1e-3 maxStep (default 0.02) */
  readonly grading?: number;
  readonly parameters?: Partial<SorptionParameters>;
}

export interface DiffusionSorptionSolution {
  /** cell centres (i + 1/2)/N */
  readonly x: Float64Array;
  readonly times: Float64Array;
  /** u[k][i]: cell value of u at times[k] */
  readonly u: Float64Array[];
  /** ∫C dx = Σ dx C(u_i) at each output time */
  readonly mass: Float64Array;
  /** ∫0^t (−D u_x)(0, s) ds, the mass that entered at x = 0, accumulated with the scheme's rule */
  readonly inflow: Float64Array;
  /** ∫0^t (−D u_x)(1, s) ds, the mass that left at x = 1 */
  readonly outflow: Float64Array;
  /** u(1, t) on the boundary face (= −D u_x(1, t) by construction) */
  readonly outflowValue: Float64Array;
  readonly steps: number;
  readonly newtonIterations: number;
}

/** `levels` equally spaced times over [0, end] (PDEBench: 101 levels over [0, 500]). */
export function uniformTimes(end = PDEBENCH_END_TIME, levels = PDEBENCH_TIME_LEVELS): Float64Array {
  const times = new Float64Array(levels);
  for (let k = 0; k < levels; k++) times[k] = (end * k) / (levels - 1);
  return times;
}

// On max |Δu| (u is O(1)). Newton converges quadratically (observed Δ: 1e-5, 1e-10, 1e-17), so the
// state after an update of 1e-10 is already accurate to round-off.
const NEWTON_TOLERANCE = 1e-10;
const NEWTON_MAX_ITERATIONS = 30;
const MAX_STEP_HALVINGS = 20;
const FIRST_STEP = 1e-3; // × maxStep

/** Solves the diffusion–sorption problem by finite volumes + BDF2 (see the file comment). */
export function solveDiffusionSorption(options: DiffusionSorptionOptions): DiffusionSorptionSolution {
  const p: SorptionParameters = { ...PDEBENCH_SORPTION, ...options.parameters };
  const n = typeof options.initial === 'function' ? (options.cells ?? 1024) : options.initial.length;
  if (!Number.isInteger(n) || n < 3) throw new EcpruneError('usage', `need at least 3 cells, got ${n}`);
  const dx = 1 / n;
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = (i + 0.5) * dx;
  const u = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    u[i] = typeof options.initial === 'function' ? options.initial(x[i]) : options.initial[i];
    if (!Number.isFinite(u[i]) || u[i] < 0) {
      throw new EcpruneError(
        'input',
        `initial value ${u[i]} is not a finite concentration >= 0`,
        undefined,
        `cell ${i}`,
      );
    }
  }
  const times = Float64Array.from(options.outputTimes ?? uniformTimes());
  if (times.length === 0 || times[0] !== 0) throw new EcpruneError('usage', 'output times must start at 0');
  for (let k = 1; k < times.length; k++) {
    if (!(times[k] > times[k - 1])) throw new EcpruneError('usage', `output times not increasing at ${k}`);
  }
  const maxStep = options.maxStep ?? 0.25;
  const grading = options.grading ?? 0.02;
  if (!(maxStep > 0)) throw new EcpruneError('usage', `maxStep must be > 0, got ${maxStep}`);
  if (!(grading > 0)) throw new EcpruneError('usage', `grading must be > 0, got ${grading}`);

  const D = p.diffusivity;
  const beta = outflowFaceFactor(p, dx);
  const uIn = p.inflowConcentration;
  const sorption = sorptionModel(p);
  // C at the current and the previous time level (the BDF2 history), and per-step work arrays
  let cNow = new Float64Array(n);
  let cPrev = new Float64Array(n);
  const uStart = new Float64Array(n);
  const uPrev = new Float64Array(n); // u at the previous time level, for the predictor
  const residual = new Float64Array(n);
  const diag = new Float64Array(n);
  const scratch = new Float64Array(n);

  let previousStep = 0; // 0: no history yet, the first step is backward Euler
  let inflow = 0;
  let outflow = 0;
  let previousInflowIncrement = 0;
  let previousOutflowIncrement = 0;
  let steps = 0;
  let newtonIterations = 0;

  // Face fluxes (positive towards +x) with the current u: F_0 through the Dirichlet half cell,
  // F_j = D (u_{j-1} − u_j)/dx inside, F_N = beta u_{N-1} out of the Cauchy face.
  const inflowFlux = () => (2 * D * (uIn - u[0])) / dx;
  const outflowFlux = () => beta * u[n - 1];

  /**
   * One variable-step BDF2 step of length h in conservative form (backward Euler for the first):
   *   G_i = dx (a C(u_i) − b C_i^n + c C_i^{n−1}) − h (F_i − F_{i+1}) = 0,
   *   w = h / h_prev,  a = (1 + 2w)/(1 + w),  b = 1 + w,  c = w²/(1 + w)   (a − b + c = 0),
   * solved by Newton with the tridiagonal Jacobian (off-diagonals −h D/dx). Summing G over the cells,
   * the interior fluxes cancel: a ΔM^{n+1} − c ΔM^n = h (F_0 − F_N), so the boundary fluxes are
   * accumulated with that same recursion and the mass balance is a discrete identity.
   * Returns false (u restored) when Newton does not converge, so that the caller can halve the step.
   */
  const step = (h: number): boolean => {
    const w = previousStep > 0 ? h / previousStep : 0;
    const a = (1 + 2 * w) / (1 + w);
    const b = 1 + w;
    const c = (w * w) / (1 + w);
    uStart.set(u);
    for (let i = 0; i < n; i++) {
      sorption.evaluate(u[i]);
      cNow[i] = sorption.c;
      // Newton starts from the linear extrapolation of the last two levels: one iteration fewer.
      // Clamped at 0, because extrapolating a decaying value can overshoot below.
      if (previousStep > 0) u[i] = Math.max(0, u[i] + w * (u[i] - uPrev[i]));
    }
    const off = (-h * D) / dx;
    for (let iteration = 1; iteration <= NEWTON_MAX_ITERATIONS; iteration++) {
      newtonIterations++;
      let fluxLeft = inflowFlux();
      for (let i = 0; i < n; i++) {
        const fluxRight = i === n - 1 ? outflowFlux() : (D * (u[i] - u[i + 1])) / dx;
        sorption.evaluate(u[i]);
        residual[i] = dx * (a * sorption.c - b * cNow[i] + c * cPrev[i]) - h * (fluxLeft - fluxRight);
        const leftCoupling = i === 0 ? (2 * D) / dx : D / dx;
        const rightCoupling = i === n - 1 ? beta : D / dx;
        diag[i] = a * dx * sorption.r + h * (leftCoupling + rightCoupling);
        fluxLeft = fluxRight;
      }
      const change = solveTridiagonal(off, diag, off, residual, scratch); // residual := J⁻¹ G
      for (let i = 0; i < n; i++) u[i] -= residual[i];
      if (!Number.isFinite(change)) break;
      if (change <= NEWTON_TOLERANCE) {
        previousInflowIncrement = (c * previousInflowIncrement + h * inflowFlux()) / a;
        previousOutflowIncrement = (c * previousOutflowIncrement + h * outflowFlux()) / a;
        inflow += previousInflowIncrement;
        outflow += previousOutflowIncrement;
        [cPrev, cNow] = [cNow, cPrev];
        uPrev.set(uStart);
        previousStep = h;
        steps++;
        return true;
      }
    }
    u.set(uStart);
    return false;
  };

  const advance = (h: number, depth: number): void => {
    if (step(h)) return;
    if (depth >= MAX_STEP_HALVINGS) {
      throw new EcpruneError(
        'internal',
        `Newton did not converge with step ${h}`,
        undefined,
        'diffusion-sorption',
      );
    }
    advance(h / 2, depth + 1);
    advance(h / 2, depth + 1);
  };

  const snapshots: Float64Array[] = [];
  const mass = new Float64Array(times.length);
  const inflowAt = new Float64Array(times.length);
  const outflowAt = new Float64Array(times.length);
  const outflowValue = new Float64Array(times.length);
  const record = (k: number) => {
    snapshots.push(u.slice());
    let total = 0;
    for (let i = 0; i < n; i++) {
      sorption.evaluate(u[i]);
      total += sorption.c;
    }
    mass[k] = total * dx;
    inflowAt[k] = inflow;
    outflowAt[k] = outflow;
    outflowValue[k] = outflowFlux(); // the face value u_f = beta u_{N-1} is the outflow flux
  };
  record(0);
  for (let k = 1; k < times.length; k++) {
    for (let t = times[k - 1]; ; ) {
      // Steps grow with t (dt <= grading t) because the boundary/initial mismatch at t = 0 (u0 != 1
      // next to x = 0) makes u_tt ~ 1/t^2 early on: equal steps would put the largest error there.
      const remaining = times[k] - t;
      const desired = Math.min(maxStep, Math.max(grading * t, FIRST_STEP * maxStep));
      const count = Math.ceil(remaining / desired - 1e-9); // equal steps to the output time: no sliver
      if (count <= 1) {
        advance(remaining, 0);
        break;
      }
      advance(remaining / count, 0);
      t += remaining / count;
    }
    record(k);
  }
  return {
    x,
    times,
    u: snapshots,
    mass,
    inflow: inflowAt,
    outflow: outflowAt,
    outflowValue,
    steps,
    newtonIterations,
  };
}

/**
 * Solves (lower, diag, upper) z = rhs for a tridiagonal matrix with constant off-diagonals (Thomas
 * algorithm; the Newton matrix is diagonally dominant, so no pivoting). Overwrites `rhs` with z and
 * returns max |z|.
 */
function solveTridiagonal(
  lower: number,
  diag: Float64Array,
  upper: number,
  rhs: Float64Array,
  scratch: Float64Array,
): number {
  const n = diag.length;
  scratch[0] = upper / diag[0];
  rhs[0] /= diag[0];
  for (let i = 1; i < n; i++) {
    const pivot = diag[i] - lower * scratch[i - 1];
    scratch[i] = upper / pivot;
    rhs[i] = (rhs[i] - lower * rhs[i - 1]) / pivot;
  }
  let largest = Math.abs(rhs[n - 1]);
  for (let i = n - 2; i >= 0; i--) {
    rhs[i] -= scratch[i] * rhs[i + 1];
    largest = Math.max(largest, Math.abs(rhs[i]));
  }
  return largest;
}

// ---------------------------------------------------------------------------------------------------
// Random initial conditions

/** Upper end of the initial concentration range (PDEBench draws u0 uniformly in [0, 0.2]). */
export const INITIAL_MAX = 0.2;
/** Amplitude bound of sine mode k: |a_k| <= MODE_AMPLITUDE / k. */
const MODE_AMPLITUDE = 0.05;

/**
 * u0(x) = clip(level + Σ_k a_k sin(k π x), 0, 0.2) with level ~ U(0, 0.2) and a_k ~ U(−0.05/k, 0.05/k).
 * With no modes this is exactly PDEBench's initial condition (a constant drawn from U(0, 0.2)); the
 * modes add smooth spatial variation while keeping u0(0) = u0(1) = level.
 */
export interface InitialCondition {
  readonly level: number;
  readonly amplitudes: readonly number[];
}

export function randomInitialCondition(random: Random, modes = 3): InitialCondition {
  const level = INITIAL_MAX * random.next();
  const amplitudes = Array.from(
    { length: modes },
    (_, j) => ((2 * random.next() - 1) * MODE_AMPLITUDE) / (j + 1),
  );
  return { level, amplitudes };
}

export function initialProfile(ic: InitialCondition, x: number): number {
  let value = ic.level;
  for (let j = 0; j < ic.amplitudes.length; j++) value += ic.amplitudes[j] * Math.sin((j + 1) * Math.PI * x);
  return Math.min(INITIAL_MAX, Math.max(0, value));
}

/** The initial-condition parameters scaled to unit ranges: level/0.2 in [0, 1], a_k k/0.05 in [-1, 1]. */
export function initialFeatures(ic: InitialCondition): number[] {
  return [ic.level / INITIAL_MAX, ...ic.amplitudes.map((a, j) => (a * (j + 1)) / MODE_AMPLITUDE)];
}

// ---------------------------------------------------------------------------------------------------
// Surrogate-regression data set

export interface DiffusionSorptionDatasetOptions {
  /** number of simulated trajectories, each with its own random initial condition (default 50) */
  readonly trajectories?: number;
  /** cells of each simulation (default 256: 4x coarser than PDEBench) */
  readonly cells?: number;
  /** saved time levels over [0, 500] (default 101, as PDEBench) */
  readonly times?: number;
  /** sine modes of the initial condition (default 3; 0 gives PDEBench's constant u0) */
  readonly modes?: number;
  /** (x, t) grid points drawn per trajectory without replacement (default 500; all when larger) */
  readonly samplesPerTrajectory?: number;
  /** Gaussian noise on training targets, std = noise × std(training targets) (default 0) */
  readonly noise?: number;
  readonly seed?: number;
  /** fraction of trajectories held out for the test set (default 0.2; whole trajectories, so no leakage) */
  readonly split?: number;
  /** time stepping of the simulations (default `DATASET_STEPPING`) */
  readonly maxStep?: number;
  readonly grading?: number;
}

/**
 * The data set's time stepping. On 256 cells its time error (max 4e-4, rms 3e-5 over the 101 levels)
 * is comparable to the space error (max 8e-4, rms 2e-5 against 2048 cells), and both are well below
 * the smallest noise level used (0.01 std(u) ≈ 3e-3); ~280 steps, ~30 ms per trajectory.
 */
export const DATASET_STEPPING = { maxStep: 2.5, grading: 0.1 } as const;

export interface DiffusionSorptionDataset {
  /** inputs [x, t/500, level, a_1 … a_m] (IC parameters scaled as in `initialFeatures`), target u */
  readonly train: Dataset;
  /** held-out trajectories; targets without noise */
  readonly test: Dataset;
  readonly featureNames: readonly string[];
  /** the std of the Gaussian noise added to the training targets */
  readonly noiseStd: number;
}

/**
 * Learn u(x, t; initial condition) from solver samples. Defaults give 40 training trajectories ×
 * 500 points = 20,000 training samples (and 5,000 test samples).
 */
export function diffusionSorptionDataset(
  options: DiffusionSorptionDatasetOptions = {},
): DiffusionSorptionDataset {
  const trajectories = options.trajectories ?? 50;
  const cells = options.cells ?? 256;
  const levels = options.times ?? PDEBENCH_TIME_LEVELS;
  const modes = options.modes ?? 3;
  const noise = options.noise ?? 0;
  const split = options.split ?? 0.2;
  const seed = options.seed ?? 0;
  if (!Number.isInteger(trajectories) || trajectories < 2) {
    throw new EcpruneError('usage', `trajectories must be an integer >= 2, got ${trajectories}`);
  }
  if (!(noise >= 0)) throw new EcpruneError('usage', `noise must be >= 0, got ${noise}`);
  if (!Number.isInteger(modes) || modes < 0)
    throw new EcpruneError('usage', `modes must be >= 0, got ${modes}`);
  if (!(split > 0 && split < 1)) throw new EcpruneError('usage', `split must be in (0, 1), got ${split}`);
  const testCount = Math.min(trajectories - 1, Math.max(1, Math.round(split * trajectories)));
  const grid = cells * levels;
  const perTrajectory = Math.min(grid, options.samplesPerTrajectory ?? 500);
  if (!Number.isInteger(perTrajectory) || perTrajectory < 1) {
    throw new EcpruneError('usage', `samplesPerTrajectory must be a positive integer, got ${perTrajectory}`);
  }
  const times = uniformTimes(PDEBENCH_END_TIME, levels);
  const features = 2 + 1 + modes;

  // Three streams, so that the noise level never changes which samples are drawn.
  const icRandom = createRandom(seed);
  const pointRandom = createRandom(seed + 0x9e3779b9);
  const noiseRandom = createRandom(seed + 0x7f4a7c15);

  const build = (first: number, count: number) => {
    const x = matrix(count * perTrajectory, features);
    const y = matrix(count * perTrajectory, 1);
    const points = Int32Array.from({ length: grid }, (_, j) => j);
    let row = 0;
    for (let r = first; r < first + count; r++) {
      const ic = randomInitialCondition(icRandom, modes);
      const solution = solveDiffusionSorption({
        initial: (xi) => initialProfile(ic, xi),
        cells,
        outputTimes: times,
        maxStep: options.maxStep ?? DATASET_STEPPING.maxStep,
        grading: options.grading ?? DATASET_STEPPING.grading,
      });
      const icFeatures = initialFeatures(ic);
      // partial Fisher–Yates: the first perTrajectory entries become a uniform sample without replacement
      for (let s = 0; s < perTrajectory; s++) {
        const j = s + pointRandom.int(grid - s);
        [points[s], points[j]] = [points[j], points[s]];
        const level = Math.floor(points[s] / cells);
        const cell = points[s] % cells;
        const out = row * features;
        x.data[out] = solution.x[cell];
        x.data[out + 1] = times[level] / PDEBENCH_END_TIME;
        x.data.set(icFeatures, out + 2);
        y.data[row] = solution.u[level][cell];
        row++;
      }
    }
    return { x, y };
  };

  const train = build(0, trajectories - testCount);
  const test = build(trajectories - testCount, testCount);
  const noiseStd = noise * standardDeviation(train.y.data);
  for (let i = 0; noiseStd > 0 && i < train.y.data.length; i++)
    train.y.data[i] += noiseStd * noiseRandom.normal();
  const name = `diffusion-sorption(seed ${seed})`;
  return {
    train: inMemoryDataset(train.x, { kind: 'values', values: train.y }, `${name}:train`),
    test: inMemoryDataset(test.x, { kind: 'values', values: test.y }, `${name}:test`),
    featureNames: ['x', 't', 'level', ...Array.from({ length: modes }, (_, j) => `a${j + 1}`)],
    noiseStd,
  };
}

function standardDeviation(values: ArrayLike<number>): number {
  let mean = 0;
  for (let i = 0; i < values.length; i++) mean += values[i];
  mean /= values.length;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += (values[i] - mean) ** 2;
  return Math.sqrt(sum / values.length);
}
