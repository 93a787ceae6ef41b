/**
 * Generates the runtime's WebAssembly kernels, batch 1 and batches (two modules, each under the 4 KB
 * that Chrome compiles synchronously): writes src/runtime/wasm-kernels.wat and
 * wasm-batch-kernels.wat (the text, for reading and review) and src/runtime/wasm-kernels-binary.ts
 * (the assembled bytes as base64, which is what the runtime loads, so neither users nor CI need the assembler).
 * Run after editing the templates below: `npx tsx scripts/build-wasm-kernels.ts` (needs the `wabt`
 * dev dependency). The WAT is generated rather than hand-written because the unrolled loops repeat
 * one term many times.
 *
 * The batch-1 kernels compute exactly what the JavaScript kernels in src/runtime/kernels.ts compute, in
 * the same order (double sums, the same partial-sum split and unrolling), so their outputs are
 * bit-identical; the tests check that. All pointers are byte offsets into the imported memory.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import wabtInit from 'wabt';

type Width = 16 | 32;

const idxLoad = (w: Width, offset: number, ptr: string) =>
  w === 16
    ? `(i32.load16_u offset=${offset} (local.get ${ptr}))`
    : `(i32.load offset=${offset} (local.get ${ptr}))`;

/** values[k + u] · x[colIdx[k + u]] as a double. */
function gatherTerm(w: Width, u: number): string {
  const wv = `(f64.promote_f32 (f32.load offset=${4 * u} (local.get $pv)))`;
  const xv = `(f64.promote_f32 (f32.load (i32.add (local.get $x) (i32.shl ${idxLoad(w, (w / 8) * u, '$pc')} (i32.const 2)))))`;
  return `(f64.mul ${wv} ${xv})`;
}

const addTo = (s: string, v: string) => `(local.set ${s} (f64.add (local.get ${s}) ${v}))`;
const advance = (n: number, w: Width) =>
  `(local.set $pv (i32.add (local.get $pv) (i32.const ${4 * n})))
        (local.set $pc (i32.add (local.get $pc) (i32.const ${(w / 8) * n})))`;

const xAddr = (w: Width, u: number) =>
  `(i32.add (local.get $x) (i32.shl ${idxLoad(w, (w / 8) * u, '$pc')} (i32.const 2)))`;

/** f32x4 (x[colIdx[k + u]], ..., x[colIdx[k + u + 3]]). */
function xQuad(w: Width, u: number): string {
  let v = `(v128.load32_zero ${xAddr(w, u)})`;
  for (let lane = 1; lane < 4; lane++) v = `(v128.load32_lane ${lane} ${xAddr(w, u + lane)} ${v})`;
  return v;
}

const lo = (v: string) => `(f64x2.promote_low_f32x4 ${v})`;
const hi = (v: string) =>
  `(f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 ${v} ${v}))`;
const vadd = (a: string, b: string) => `(f64x2.add ${a} ${b})`;
const vmul = (a: string, b: string) => `(f64x2.mul ${a} ${b})`;

/**
 * `spmv`: y[i] = b[i] + Σ values[k] · x[colIdx[k]], with the JS kernel's partial sums s0, s1 in
 * one f64x2 and s2, s3 in another: the same terms added in the same order, so the same results bit
 * for bit. (A scalar version measured 1.3× slower, a scalar scatter ~10 % slower, the 16-bit
 * scatter unrolled by 8 3–4 % slower: src/runtime/wasm-kernels.ts.)
 */
function gather(w: Width): string {
  const setQuads = (n: number) =>
    Array.from(
      { length: n },
      (_, q) =>
        `(local.set $w${q} (v128.load offset=${16 * q} (local.get $pv)))
          (local.set $x${q} ${xQuad(w, 4 * q)})`,
    ).join('\n          ');
  return `
  (func (export "gather${w}")
    (param $rp i32) (param $ci i32) (param $va i32) (param $bi i32) (param $x i32) (param $y i32) (param $n i32)
    (local $i i32) (local $pv i32) (local $pc i32) (local $pe i32) (local $end i32)
    (local $s0 f64) (local $a01 v128) (local $a23 v128)
    (local $w0 v128) (local $w1 v128) (local $x0 v128) (local $x1 v128)
    (local.set $end (i32.load (local.get $rp)))
    (local.set $pv (i32.add (local.get $va) (i32.shl (local.get $end) (i32.const 2))))
    (local.set $pc (i32.add (local.get $ci) (i32.shl (local.get $end) (i32.const ${w === 16 ? 1 : 2}))))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $rp (i32.add (local.get $rp) (i32.const 4)))
        (local.set $pe (i32.add (local.get $va) (i32.shl (i32.load (local.get $rp)) (i32.const 2))))
        (local.set $a01 (f64x2.replace_lane 0 (f64x2.splat (f64.const 0))
          (f64.promote_f32 (f32.load (i32.add (local.get $bi) (i32.shl (local.get $i) (i32.const 2)))))))
        (local.set $a23 (f64x2.splat (f64.const 0)))
        (block $b8 (loop $l8
          (br_if $b8 (i32.gt_u (i32.add (local.get $pv) (i32.const 32)) (local.get $pe)))
          ${setQuads(2)}
          (local.set $a01 ${vadd('(local.get $a01)', vadd(vmul(lo('(local.get $w0)'), lo('(local.get $x0)')), vmul(lo('(local.get $w1)'), lo('(local.get $x1)'))))})
          (local.set $a23 ${vadd('(local.get $a23)', vadd(vmul(hi('(local.get $w0)'), hi('(local.get $x0)')), vmul(hi('(local.get $w1)'), hi('(local.get $x1)'))))})
          ${advance(8, w)}
          (br $l8)))
        (block $b4 (loop $l4
          (br_if $b4 (i32.gt_u (i32.add (local.get $pv) (i32.const 16)) (local.get $pe)))
          ${setQuads(1)}
          (local.set $a01 ${vadd('(local.get $a01)', vmul(lo('(local.get $w0)'), lo('(local.get $x0)')))})
          (local.set $a23 ${vadd('(local.get $a23)', vmul(hi('(local.get $w0)'), hi('(local.get $x0)')))})
          ${advance(4, w)}
          (br $l4)))
        (local.set $s0 (f64x2.extract_lane 0 (local.get $a01)))
        (block $b1 (loop $l1
          (br_if $b1 (i32.ge_u (local.get $pv) (local.get $pe)))
          ${addTo('$s0', gatherTerm(w, 0))}
          ${advance(1, w)}
          (br $l1)))
        (f32.store (i32.add (local.get $y) (i32.shl (local.get $i) (i32.const 2)))
          (f32.demote_f64 (f64.add
            (f64.add (local.get $s0) (f64x2.extract_lane 1 (local.get $a01)))
            (f64.add (f64x2.extract_lane 0 (local.get $a23)) (f64x2.extract_lane 1 (local.get $a23))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows)))
  )`;
}

/** acc[rowIdx[k + u]] += values[k + u] · xj. */
function scatterTerm(w: Width, u: number): string {
  return `(local.set $a (i32.add (local.get $acc) (i32.shl ${idxLoad(w, (w / 8) * u, '$pc')} (i32.const 3))))
          (f64.store (local.get $a) (f64.add (f64.load (local.get $a))
            (f64.mul (f64.promote_f32 (f32.load offset=${4 * u} (local.get $pv))) (local.get $xj))))`;
}

/** acc[rowIdx[k + u]] += the product already in lane `lane` of the f64x2 `$p`. */
function scatterLane(w: Width, u: number, p: string, lane: number): string {
  return `(local.set $a (i32.add (local.get $acc) (i32.shl ${idxLoad(w, (w / 8) * u, '$pc')} (i32.const 3))))
          (f64.store (local.get $a) (f64.add (f64.load (local.get $a)) (f64x2.extract_lane ${lane} (local.get ${p}))))`;
}

/** Four weights: their products with xj computed two at a time, then added one by one. */
function scatterQuad(w: Width, u: number): string {
  const wv = `(v128.load offset=${4 * u} (local.get $pv))`;
  return `(local.set $w0 ${wv})
          (local.set $p0 (f64x2.mul ${lo('(local.get $w0)')} (local.get $xj2)))
          (local.set $p1 (f64x2.mul ${hi('(local.get $w0)')} (local.get $xj2)))
          ${scatterLane(w, u, '$p0', 0)}
          ${scatterLane(w, u + 1, '$p0', 1)}
          ${scatterLane(w, u + 2, '$p1', 0)}
          ${scatterLane(w, u + 3, '$p1', 1)}`;
}

/** `spmvScatter`: acc = b; acc[row] += values · x[j] over the listed non-zero inputs; y = acc. */
function scatter(w: Width): string {
  // the 32-bit variant (more than 65536 outputs) is rare: unrolled less, to keep the module under 4 KB
  const unroll = w === 16 ? 16 : 8;
  const terms = (n: number) =>
    n % 4 === 0
      ? Array.from({ length: n / 4 }, (_, q) => scatterQuad(w, 4 * q)).join('\n          ')
      : Array.from({ length: n }, (_, u) => scatterTerm(w, u)).join('\n          ');
  return `
  (func (export "scatter${w}")
    (param $cp i32) (param $ri i32) (param $va i32) (param $bi i32) (param $x i32) (param $nz i32) (param $count i32)
    (param $y i32) (param $acc i32) (param $n i32)
    (local $i i32) (local $t i32) (local $j i32) (local $k i32) (local $pv i32) (local $pc i32) (local $pe i32) (local $a i32)
    (local $xj f64) (local $xj2 v128) (local $w0 v128) (local $p0 v128) (local $p1 v128)
    (block $b (loop $l
      (br_if $b (i32.ge_u (local.get $i) (local.get $n)))
      (f64.store (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 3)))
        (f64.promote_f32 (f32.load (i32.add (local.get $bi) (i32.shl (local.get $i) (i32.const 2))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (block $done (loop $cols
      (br_if $done (i32.ge_u (local.get $t) (local.get $count)))
      (local.set $j (i32.shl (i32.load (i32.add (local.get $nz) (i32.shl (local.get $t) (i32.const 2)))) (i32.const 2)))
      (local.set $xj (f64.promote_f32 (f32.load (i32.add (local.get $x) (local.get $j)))))
      (local.set $xj2 (f64x2.splat (local.get $xj)))
      (local.set $k (i32.load (i32.add (local.get $cp) (local.get $j))))
      (local.set $pv (i32.add (local.get $va) (i32.shl (local.get $k) (i32.const 2))))
      (local.set $pc (i32.add (local.get $ri) (i32.shl (local.get $k) (i32.const ${w === 16 ? 1 : 2}))))
      (local.set $pe (i32.add (local.get $va) (i32.shl (i32.load offset=4 (i32.add (local.get $cp) (local.get $j))) (i32.const 2))))
      (block $bu (loop $lu
        (br_if $bu (i32.gt_u (i32.add (local.get $pv) (i32.const ${4 * unroll})) (local.get $pe)))
          ${terms(unroll)}
          ${advance(unroll, w)}
        (br $lu)))
      (block $b4 (loop $l4
        (br_if $b4 (i32.gt_u (i32.add (local.get $pv) (i32.const 16)) (local.get $pe)))
          ${terms(4)}
          ${advance(4, w)}
        (br $l4)))
      (block $b1 (loop $l1
        (br_if $b1 (i32.ge_u (local.get $pv) (local.get $pe)))
          ${terms(1)}
          ${advance(1, w)}
        (br $l1)))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br $cols)))
    (local.set $i (i32.const 0))
    (block $b (loop $l
      (br_if $b (i32.ge_u (local.get $i) (local.get $n)))
      (f32.store (i32.add (local.get $y) (i32.shl (local.get $i) (i32.const 2)))
        (f32.demote_f64 (f64.load (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 3))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
  )`;
}

/** `nonzeroIndices`: writes the positions j < n with x[j] ≠ ±0 (NaN counts) to nz, returns how many. */
const NONZERO = `
  (func (export "nonzero") (param $x i32) (param $n i32) (param $nz i32) (result i32)
    (local $j i32) (local $count i32)
    (block $b (loop $l
      (br_if $b (i32.ge_u (local.get $j) (local.get $n)))
      (i32.store (i32.add (local.get $nz) (i32.shl (local.get $count) (i32.const 2))) (local.get $j))
      (local.set $count (i32.add (local.get $count)
        (i32.ne (i32.and (i32.load (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2)))) (i32.const 0x7fffffff)) (i32.const 0))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $l)))
    (local.get $count)
  )`;

export function kernelsWat(): string {
  return `;; Generated by scripts/build-wasm-kernels.ts: edit that, not this file.
(module
  (import "env" "memory" (memory 0))
${gather(16)}
${gather(32)}
${scatter(16)}
${scatter(32)}
${NONZERO}
)
`;
}

/**
 * Samples per register tile of the batch kernel: 4 f32x4 sums. Measured against onnxruntime-node
 * at batch 256 (784-300-100-10 at 90 %, load 5–7 on 2 cores): tiles of 16 samples 1.0–1.3× its
 * speed, of 8, 24, 32, 48 and 64 samples 0.6–1.0× (past 16, likely spills: x64 has 16 vector registers).
 */
const BATCH_TILE = 16;

/**
 * The batch kernel: y = W x + b for a feature-major panel of `width` samples (feature j of sample
 * b at byte (j << shift) + 4b; width a multiple of 4). Per row, per tile of 16 samples, four f32x4
 * sums take w · x[col, b .. b+15] for each stored weight w: one splat and four contiguous loads per
 * weight and tile, two weights per iteration. ReLU (`relu` ≠ 0) is applied on the way out. Float32
 * sums, like a dense float32 GEMM (the JavaScript `spmmPanel` sums in doubles: the results agree to float32 rounding, not bit
 * for bit). Tiles of 4 samples take the rest of the panel.
 */
function panel(w: Width): string {
  const sums = (n: number) => Array.from({ length: n }, (_, t) => `$s${t}`);
  const tile = (n: number, label: string, pairs: boolean) => {
    const quads = n / 4;
    // two weights per iteration: half the loop overhead, and each sum's add chain half as long
    const pairLoop = (label: string) => `(block $${label}pe (loop $${label}p
            (br_if $${label}pe (i32.gt_u (i32.add (local.get $pv) (i32.const 8)) (local.get $pe)))
            (local.set $w (v128.load32_splat (local.get $pv)))
            (local.set $w2 (v128.load32_splat offset=4 (local.get $pv)))
            (local.set $px (i32.add (local.get $xb) (i32.shl ${idxLoad(w, 0, '$pc')} (local.get $shift))))
            (local.set $px2 (i32.add (local.get $xb) (i32.shl ${idxLoad(w, w / 8, '$pc')} (local.get $shift))))
            ${sums(quads)
              .map(
                (s, t) =>
                  `(local.set ${s} (f32x4.add (local.get ${s}) (f32x4.add (f32x4.mul (local.get $w) (v128.load offset=${16 * t} (local.get $px))) (f32x4.mul (local.get $w2) (v128.load offset=${16 * t} (local.get $px2))))))`,
              )
              .join('\n            ')}
            (local.set $pv (i32.add (local.get $pv) (i32.const 8)))
            (local.set $pc (i32.add (local.get $pc) (i32.const ${w / 4})))
            (br $${label}p)))`;
    const init = sums(quads)
      .map((s) => `(local.set ${s} (local.get $b4))`)
      .join(' ');
    const madd = sums(quads)
      .map(
        (s, t) =>
          `(local.set ${s} (f32x4.add (local.get ${s}) (f32x4.mul (local.get $w) (v128.load offset=${16 * t} (local.get $px)))))`,
      )
      .join('\n            ');
    // relu as pmax(0, s) = 0 < s ? s : 0, which maps NaN and -0 to +0 like the JavaScript activation
    const store = sums(quads)
      .map(
        (s, t) =>
          `(v128.store offset=${16 * t} (local.get $py) (if (result v128) (local.get $relu) (then (f32x4.pmax (v128.const i32x4 0 0 0 0) (local.get ${s}))) (else (local.get ${s}))))`,
      )
      .join('\n          ');
    return `(block $${label}e (loop $${label}
          (br_if $${label}e (i32.gt_u (i32.add (local.get $b) (i32.const ${4 * n})) (local.get $end)))
          ${init}
          (local.set $pv (local.get $v0)) (local.set $pc (local.get $c0))
          (local.set $xb (i32.add (local.get $x) (local.get $b)))
          ${pairs ? pairLoop(label) : ''}
          (block $${label}ke (loop $${label}k
            (br_if $${label}ke (i32.ge_u (local.get $pv) (local.get $pe)))
            (local.set $w (v128.load32_splat (local.get $pv)))
            (local.set $px (i32.add (local.get $xb) (i32.shl ${idxLoad(w, 0, '$pc')} (local.get $shift))))
            ${madd}
            (local.set $pv (i32.add (local.get $pv) (i32.const 4)))
            (local.set $pc (i32.add (local.get $pc) (i32.const ${w / 8})))
            (br $${label}k)))
          (local.set $py (i32.add (local.get $yr) (local.get $b)))
          ${store}
          (local.set $b (i32.add (local.get $b) (i32.const ${4 * n})))
          (br $${label})))`;
  };
  return `
  (func (export "panel${w}")
    (param $rp i32) (param $ci i32) (param $va i32) (param $bi i32) (param $x i32) (param $y i32) (param $n i32) (param $width i32) (param $shift i32) (param $relu i32)
    (local $i i32) (local $b i32) (local $stride i32) (local $end i32) (local $yr i32) (local $v0 i32) (local $c0 i32) (local $pv i32) (local $pc i32)
    (local $pe i32) (local $xb i32) (local $px i32) (local $px2 i32) (local $py i32)
    (local $b4 v128) (local $w v128) (local $w2 v128) ${sums(BATCH_TILE / 4)
      .map((s) => `(local ${s} v128)`)
      .join(' ')}
    (local.set $stride (i32.shl (i32.const 1) (local.get $shift)))
    (local.set $end (i32.shl (local.get $width) (i32.const 2)))
    (local.set $yr (local.get $y))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $v0 (i32.add (local.get $va) (i32.shl (i32.load (local.get $rp)) (i32.const 2))))
      (local.set $c0 (i32.add (local.get $ci) (i32.mul (i32.load (local.get $rp)) (i32.const ${w / 8}))))
      (local.set $rp (i32.add (local.get $rp) (i32.const 4)))
      (local.set $pe (i32.add (local.get $va) (i32.shl (i32.load (local.get $rp)) (i32.const 2))))
      (local.set $b4 (v128.load32_splat (i32.add (local.get $bi) (i32.shl (local.get $i) (i32.const 2)))))
      (local.set $b (i32.const 0))
      ${tile(BATCH_TILE, 'tile', true)}
      ${tile(4, 't4', false)}
      (local.set $yr (i32.add (local.get $yr) (local.get $stride)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rows)))
  )`;
}

/** i8x16.shuffle of two f32x4 by lanes (0–3 the first operand's, 4–7 the second's). */
const shuffle = (lanes: number[], a: string, b: string) =>
  `(i8x16.shuffle ${lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]).join(' ')} ${a} ${b})`;

/** Source row r + k of the 4-row block at column pointer $ps. */
const rowAt = (k: number) =>
  k === 0
    ? '(local.get $ps)'
    : `(i32.add (local.get $ps) ${k === 1 ? '(local.get $srcStride)' : `(i32.mul (local.get $srcStride) (i32.const ${k}))`})`;

/**
 * dst[c · dstStride + r] = src[r · srcStride + c] for r < rows, c < cols (float32s, strides in
 * elements): a batch into a feature-major panel and the last panel back. Blocks of 4 x 4 by
 * shuffles, then the remaining columns of a 4-row block by lanes, then the remaining rows one float
 * at a time.
 */
const TRANSPOSE = `
  (func (export "transpose") (param $src i32) (param $srcStride i32) (param $dst i32) (param $dstStride i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $c i32) (local $ps i32) (local $pd i32)
    (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $srcStride (i32.shl (local.get $srcStride) (i32.const 2)))
    (local.set $dstStride (i32.shl (local.get $dstStride) (i32.const 2)))
    (block $qd (loop $ql
      (br_if $qd (i32.gt_u (i32.add (local.get $r) (i32.const 4)) (local.get $rows)))
      (local.set $ps (i32.add (local.get $src) (i32.mul (local.get $r) (local.get $srcStride))))
      (local.set $pd (i32.add (local.get $dst) (i32.shl (local.get $r) (i32.const 2))))
      (local.set $c (i32.const 0))
      (block $bd (loop $bl
        (br_if $bd (i32.gt_u (i32.add (local.get $c) (i32.const 4)) (local.get $cols)))
        ${[0, 1, 2, 3].map((k) => `(local.set $v${k} (v128.load ${rowAt(k)}))`).join(' ')}
        (local.set $t0 ${shuffle([0, 4, 1, 5], '(local.get $v0)', '(local.get $v1)')})
        (local.set $t1 ${shuffle([2, 6, 3, 7], '(local.get $v0)', '(local.get $v1)')})
        (local.set $t2 ${shuffle([0, 4, 1, 5], '(local.get $v2)', '(local.get $v3)')})
        (local.set $t3 ${shuffle([2, 6, 3, 7], '(local.get $v2)', '(local.get $v3)')})
        (v128.store (local.get $pd) ${shuffle([0, 1, 4, 5], '(local.get $t0)', '(local.get $t2)')})
        (local.set $pd (i32.add (local.get $pd) (local.get $dstStride)))
        (v128.store (local.get $pd) ${shuffle([2, 3, 6, 7], '(local.get $t0)', '(local.get $t2)')})
        (local.set $pd (i32.add (local.get $pd) (local.get $dstStride)))
        (v128.store (local.get $pd) ${shuffle([0, 1, 4, 5], '(local.get $t1)', '(local.get $t3)')})
        (local.set $pd (i32.add (local.get $pd) (local.get $dstStride)))
        (v128.store (local.get $pd) ${shuffle([2, 3, 6, 7], '(local.get $t1)', '(local.get $t3)')})
        (local.set $pd (i32.add (local.get $pd) (local.get $dstStride)))
        (local.set $ps (i32.add (local.get $ps) (i32.const 16)))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $bl)))
      (block $cd (loop $cl
        (br_if $cd (i32.ge_u (local.get $c) (local.get $cols)))
        (v128.store (local.get $pd)
          (v128.load32_lane 3 ${rowAt(3)} (v128.load32_lane 2 ${rowAt(2)} (v128.load32_lane 1 ${rowAt(1)} (v128.load32_zero ${rowAt(0)})))))
        (local.set $ps (i32.add (local.get $ps) (i32.const 4)))
        (local.set $pd (i32.add (local.get $pd) (local.get $dstStride)))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $cl)))
      (local.set $r (i32.add (local.get $r) (i32.const 4)))
      (br $ql)))
    (block $rd (loop $rl
      (br_if $rd (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $ps (i32.add (local.get $src) (i32.mul (local.get $r) (local.get $srcStride))))
      (local.set $pd (i32.add (local.get $dst) (i32.shl (local.get $r) (i32.const 2))))
      (local.set $c (i32.const 0))
      (block $cd (loop $cl
        (br_if $cd (i32.ge_u (local.get $c) (local.get $cols)))
        (f32.store (local.get $pd) (f32.load (local.get $ps)))
        (local.set $ps (i32.add (local.get $ps) (i32.const 4)))
        (local.set $pd (i32.add (local.get $pd) (local.get $dstStride)))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $cl)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rl)))
  )`;

export function batchKernelsWat(): string {
  return `;; Generated by scripts/build-wasm-kernels.ts: edit that, not this file.
(module
  (import "env" "memory" (memory 0))
${panel(16)}
${panel(32)}
${TRANSPOSE}
)
`;
}

export async function assemble(wat: string): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const module = wabt.parseWat('wasm-kernels.wat', wat, { simd: true });
  module.validate();
  const { buffer } = module.toBinary({});
  module.destroy();
  return buffer;
}

async function main(): Promise<void> {
  const root = new URL('../src/runtime/', import.meta.url);
  const modules = [
    { name: 'wasm-kernels', constant: 'WASM_KERNELS_BASE64', what: 'batch-1 kernels', wat: kernelsWat() },
    {
      name: 'wasm-batch-kernels',
      constant: 'WASM_BATCH_KERNELS_BASE64',
      what: 'batch kernels',
      wat: batchKernelsWat(),
    },
  ];
  const constants: string[] = [];
  for (const { name, constant, what, wat } of modules) {
    const buffer = await assemble(wat);
    writeFileSync(new URL(`${name}.wat`, root), wat);
    constants.push(`/** The ${what}' WebAssembly module, ${buffer.length} bytes, base64. */
export const ${constant} =
  '${Buffer.from(buffer).toString('base64')}';
`);
    console.log(`${name}: ${buffer.length} bytes`);
  }
  writeFileSync(
    new URL('wasm-kernels-binary.ts', root),
    `// Generated by scripts/build-wasm-kernels.ts from its WAT templates (text: wasm-kernels.wat, wasm-batch-kernels.wat). Do not edit.
${constants.join('')}`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
