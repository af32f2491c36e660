#!/usr/bin/env bash
# pass@K of a trained HF model folder on the paper's benchmarks (GPU users: build with -p:TorchBackend=cuda):
#   scripts/eval-benchmarks.sh <model folder> [--device cuda] [--n 256]
# Math (Table 1: MATH500, AIME24/25, AMC23, Minerva, OlympiadBench) into <model>/eval-math,
# BBH (Table 2, out of distribution) into <model>/eval-bbh. Options after the folder apply to both.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:?usage: scripts/eval-benchmarks.sh <model folder> [eval options]}"; shift
dotnet build src/SimKO.Host -c Release --nologo -v quiet
simko() { dotnet run --project src/SimKO.Host -c Release --no-build -- "$@"; }
simko eval --model "$model" --task math500 --task aime24 --task aime25 --task amc23 --task minerva_math --task olympiadbench \
     --max-new-tokens 3072 --out "$model/eval-math" "$@"
simko eval --model "$model" --task bbh --max-new-tokens 2048 --out "$model/eval-bbh" "$@"
