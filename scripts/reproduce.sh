#!/usr/bin/env bash
# The paper's comparisons at CPU scale, each into runs/<name> with report.md, PNG plots and JSON:
#   scripts/reproduce.sh countdown   # Table 1 layout: base, GRPO, SimKO over 3 seeds (~8 min on 2 quiet cores)
#   scripts/reproduce.sh order       # Table 2 layout: the logic task with PSR, NSR and W-REINFORCE as well
#   scripts/reproduce.sh all
# Extra arguments go to `simko reproduce` (e.g. --seeds 5, --steps 400, --simko-lambda 1.1).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-countdown}"; shift || true
dotnet build src/SimKO.Host -c Release --nologo -v quiet
run() { dotnet run --project src/SimKO.Host -c Release --no-build -- reproduce "$@"; }
case "$what" in
  countdown) run --task countdown --out runs/reproduce-countdown "$@" ;;
  order) run --task order --methods grpo simko psr nsr w-reinforce --out runs/reproduce-order "$@" ;;
  all) run --task countdown --out runs/reproduce-countdown "$@"
       run --task order --methods grpo simko psr nsr w-reinforce --out runs/reproduce-order "$@" ;;
  *) echo "usage: scripts/reproduce.sh countdown|order|all [reproduce options]" >&2; exit 2 ;;
esac
