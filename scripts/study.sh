#!/usr/bin/env bash
# The study behind docs/RESULTS.md: every number there comes from the results.md of one of these
# report folders. Takes about half an hour on a 2-core machine. Usage: bash scripts/study.sh [name...]
set -euo pipefail
cd "$(dirname "$0")/.."
ecprune() { npx tsx src/cli/main.ts "$@"; }
BASELINES=ec,ec-nocomp,magnitude,magnitude-comp,obd,gradmag,random
run() {
  local name=$1; shift
  if [ $# -gt 0 ] && { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $name "* ]]; }; then
    echo "== $name"
    ecprune sweep "$@" --quiet --force -o "reports/study/$name"
  fi
}
ONLY="$*"
run mnist --dataset mnist --epochs 8 --methods $BASELINES,dense-small --finetune-epochs 0,1
run fashion-mnist --dataset fashion-mnist --epochs 5 --methods $BASELINES,dense-small --finetune-epochs 0,1
# beyond the paper: the variants and their combinations against paper-EC and the best baselines,
# on the same cached networks as above (docs/RESULTS.md, second part)
VARIANTS=ec,ec+sequential,ec+steps3,ec+refit5,ec+loss,ec+sequential+refit5,ec+sequential+steps3+refit5,ec+loss+sequential+steps3+refit5,magnitude,obd,obs
run mnist-variants --dataset mnist --epochs 8 --methods $VARIANTS --sparsities 0.8,0.9,0.95 --finetune-epochs 0,1
run fashion-mnist-variants --dataset fashion-mnist --epochs 5 --methods $VARIANTS --sparsities 0.8,0.9,0.95 --finetune-epochs 0,1
run fashion-mnist-structured --dataset fashion-mnist --epochs 5 --methods ec+2:4,magnitude+2:4,ec+neuron,magnitude+neuron,ec+neuron+refit5 --sparsities 0.5 --finetune-epochs 0,1
for noise in 0 0.05 0.1; do
  run "diffusion-sorption-$noise" --dataset "diffusion-sorption:$noise" --epochs 30 \
    --methods $BASELINES,nonlinear,dense-small --finetune-epochs 0,2
done
run diffusion-sorption-variants --dataset diffusion-sorption:0.05 --epochs 30 --methods $VARIANTS,nonlinear --sparsities 0.8,0.9,0.95 --finetune-epochs 0,2
