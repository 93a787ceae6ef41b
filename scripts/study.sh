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
for noise in 0 0.05 0.1; do
  run "diffusion-sorption-$noise" --dataset "diffusion-sorption:$noise" --epochs 30 \
    --methods $BASELINES,nonlinear,dense-small --finetune-epochs 0,2
done
