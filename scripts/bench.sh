#!/usr/bin/env bash
# Benchmarks (issue 6): builds once, then runs `simko bench` into runs/bench-<date>.
#   scripts/bench.sh            # every section (about 10 minutes on 2 CPU cores)
#   scripts/bench.sh --quick    # smoke run
#   scripts/bench.sh --full     # also rollout without the KV cache at 512 new tokens (~15 more minutes)
#   scripts/bench.sh --only rollout memory
# Timings are only comparable on a quiet machine: nothing else should run meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
out="runs/bench-$(date -u +%Y%m%dT%H%M%SZ)"
dotnet build src/SimKO.Host -c Release --nologo -v quiet
dotnet run --project src/SimKO.Host -c Release --no-build -- bench --out "$out" "$@"
echo "report: $out/bench.md, $out/bench.json"
