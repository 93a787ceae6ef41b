#!/usr/bin/env bash
# Gradual pruning during fine-tuning against one-shot pruning + the same fine-tuning, on MNIST
# 784-300-100-10 (docs/RESULTS.md, "Gradual pruning during fine-tuning"). The dense network is
# trained as in scripts/study.sh (8 epochs, Adam 1e-3, batch 128, seed 0); then, for each sparsity
# and seed, 4 epochs of fine-tuning with the schedule (pruning every 10 steps up to epoch 3, then
# 1 epoch with the masks held) against a one-shot EC prune followed by 4 epochs of fine-tuning;
# and the dense network fine-tuned 4 more epochs as a reference. Every command is printed before it
# runs; the table at the end is the mean (min-max) over the seeds of `ecprune eval --dataset mnist`
# (the 2,000 held-out test digits). About 25 minutes on a 2-core machine.
# Usage: bash scripts/gradual-study.sh [out-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-reports/gradual}
mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
ecprune() {
  echo "\$ ecprune $*" >&2
  npx tsx src/cli/main.ts "$@"
}
# one row of results.tsv: the run's name, sparsity, seed, test accuracy (%) and cross-entropy
evaluate() {
  local name=$1 sparsity=$2 seed=$3 file=$4
  ecprune eval "$file" --dataset mnist --json |
    node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log([process.argv[1], process.argv[2], process.argv[3], (100 * r.accuracy).toFixed(2), r.meanLoss.toFixed(4)].join("\t"))' \
      "$name" "$sparsity" "$seed" >>"$RESULTS"
}
DENSE="$OUT/dense.onnx"
ecprune train --dataset mnist --layers 784,300,100,10 --activation relu --epochs 8 --lr 0.001 \
  --batch-size 128 --seed 0 --quiet --force -o "$DENSE" >&2
evaluate dense 0 0 "$DENSE"
for seed in 0 1 2; do
  ecprune finetune "$DENSE" --dataset mnist --epochs 4 --seed $seed --quiet --force -o "$OUT/dense-ft-s$seed.onnx" >&2
  evaluate "dense + 4 epochs" 0 $seed "$OUT/dense-ft-s$seed.onnx"
done
for sparsity in 0.9 0.95; do
  for seed in 0 1 2; do
    gradual="$OUT/gradual-$sparsity-s$seed.onnx"
    ecprune finetune "$DENSE" --dataset mnist --epochs 4 --prune-to $sparsity --prune-end 3 \
      --prune-every 10 --prune-samples 2000 --seed $seed --quiet --force -o "$gradual" >&2
    evaluate "gradual EC during 4 epochs" $sparsity $seed "$gradual"
    oneshot="$OUT/oneshot-$sparsity-s$seed.onnx"
    ecprune prune "$DENSE" --dataset mnist --calib-samples 2000 --sparsity $sparsity --seed $seed \
      --quiet --force -o "$oneshot" >&2
    evaluate "one-shot EC" $sparsity $seed "$oneshot"
    ecprune finetune "$oneshot" --dataset mnist --epochs 4 --seed $seed --quiet --force \
      -o "$OUT/oneshot-ft-$sparsity-s$seed.onnx" >&2
    evaluate "one-shot EC + 4 epochs" $sparsity $seed "$OUT/oneshot-ft-$sparsity-s$seed.onnx"
  done
done
# the table: mean (min-max) over the seeds of each run and sparsity
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split("\t"));
const groups = new Map();
for (const [name, sparsity, , accuracy, loss] of rows) {
  const key = `${name}\t${sparsity}`;
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key).push([Number(accuracy), Number(loss)]);
}
const cell = (values, digits) => {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  return values.length === 1 ? mean.toFixed(digits)
    : `${mean.toFixed(digits)} (${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)})`;
};
console.log("| run | sparsity | test accuracy (%) | test cross-entropy |\n| :--- | ---: | ---: | ---: |");
for (const [key, values] of groups) {
  const [name, sparsity] = key.split("\t");
  console.log(`| ${name} | ${Math.round(100 * Number(sparsity))} % | ${cell(values.map((v) => v[0]), 2)} | ${cell(values.map((v) => v[1]), 4)} |`);
}' "$RESULTS"
