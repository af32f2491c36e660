#!/usr/bin/env bash
# The paper's comparisons at CPU scale, each into runs/<name> with report.md, PNG plots and JSON:
#   scripts/reproduce.sh countdown   # Table 1 layout: base, GRPO, SimKO over 3 seeds (~8 min on 2 quiet cores)
#   scripts/reproduce.sh order       # Table 2 layout: the logic task with PSR, NSR and W-REINFORCE as well
#   scripts/reproduce.sh ablation    # Table 3 layout: SimKO with one part off at a time, and GRPO (Countdown)
#   scripts/reproduce.sh sweep-alpha # Figure 7: SimKO's α over 0 … 0.2, GRPO as the paired baseline (Countdown)
#   scripts/reproduce.sh sweep-q     # Figure 7: the gate's quantile q over 0 (every token) … 1 (GRPO), GRPO paired (Countdown)
#   scripts/reproduce.sh program     # the code task: answers verified by running them in the sandbox
#   scripts/reproduce.sh all
# Extra arguments go to `simko reproduce` (e.g. --seeds 5, --steps 400, --simko-lambda 1.1).
# With PUBLISH=1 each report's files (no checkpoints) are copied into docs/results/<name>/.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-countdown}"; shift || true
dotnet build src/SimKO.Host -c Release --nologo -v quiet
run() {
  local name="$1"; shift
  dotnet run --project src/SimKO.Host -c Release --no-build -- reproduce --out "runs/reproduce-$name" "$@"
  if [ "${PUBLISH:-0}" = 1 ]; then
    mkdir -p "docs/results/$name"
    for f in report.md results.json config.json pass_at_k.png lambda.png entropy.png sweep.png; do
      if [ -f "runs/reproduce-$name/$f" ]; then cp "runs/reproduce-$name/$f" "docs/results/$name/"; fi
    done
  fi
}
one() {
  case "$1" in
    countdown) run countdown --task countdown "${@:2}" ;;
    order) run order --task order --methods grpo simko psr nsr w-reinforce "${@:2}" ;;
    ablation) run ablation --task countdown --ablation "${@:2}" ;;
    sweep-alpha) run sweep-alpha --task countdown --methods grpo simko --sweep method.alpha=0,0.02,0.05,0.1,0.2 "${@:2}" ;;
    sweep-q) run sweep-q --task countdown --methods grpo simko --sweep method.q=0,0.5,0.8,0.95,1 "${@:2}" ;;
    program) run program --task program "${@:2}" ;;
    *) echo "usage: scripts/reproduce.sh countdown|order|ablation|sweep-alpha|sweep-q|program|all [reproduce options]" >&2; exit 2 ;;
  esac
}
if [ "$what" = all ]; then
  for w in countdown ablation order sweep-alpha sweep-q program; do one "$w" "$@"; done
else
  one "$what" "$@"
fi
