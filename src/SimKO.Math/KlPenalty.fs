/// KL(π_θ ‖ π_ref) estimators per token (SPEC §2; Schulman's k1, k2, k3).
module SimKO.Math.KlPenalty

open TorchSharp
open SimKO.Math.Tensors

type KlEstimator =
    /// k1 = log π − log π_ref (unbiased, high variance).
    | K1
    /// k2 = ½ (log π − log π_ref)².
    | K2
    /// k3 = π_ref/π − log(π_ref/π) − 1 (unbiased, low variance, ≥ 0).
    | K3

type KlSettings =
    { /// β: weight of the penalty (0 = off, the SimKO runs' setting).
      Beta: float
      Estimator: KlEstimator }

let off = { Beta = 0.0; Estimator = K3 }

let validate (k: KlSettings) : string list =
    if k.Beta >= 0.0 then [] else [ sprintf "kl_beta must be >= 0, got %g" k.Beta ]

/// Per-token estimate `[B; T]` from `logProbs` (current, with gradient) and `refLogProbs` `[B; T]`.
let estimate (estimator: KlEstimator) (logProbs: Tensor) (refLogProbs: Tensor) : Tensor =
    let diff = logProbs - refLogProbs                                                 // log π − log π_ref
    match estimator with
    | K1 -> diff
    | K2 -> diff.square() * 0.5
    | K3 -> diff.neg().exp() + diff - 1.0

/// The name of an estimator (k1, k2, k3).
let name (e: KlEstimator) =
    match e with
    | K1 -> "k1"
    | K2 -> "k2"
    | K3 -> "k3"
