/// The entropy-preserving baselines of the paper's Table 1 (SPEC §4): KL-Cov and Entropy-Adv.
module SimKO.Math.Regularisers

open TorchSharp
open SimKO.Math.Tensors

/// KL-Cov (Cui et al.): on the `Ratio` fraction of valid tokens with the largest centred
/// covariance (A − Ā)(log π − mean log π), the loss is the unclipped −A·γ plus
/// `Coef`·|log π − log π_old|.
type KlCovSettings =
    { /// fraction of valid tokens penalised (paper: 2e-3).
      Ratio: float
      /// penalty coefficient (paper: 1).
      Coef: float }

let validateKlCov (s: KlCovSettings) =
    [ if not (s.Ratio > 0.0 && s.Ratio <= 1.0) then yield sprintf "kl_cov ratio must be in (0, 1], got %g" s.Ratio
      if not (s.Coef >= 0.0) then yield sprintf "kl_cov coef must be >= 0, got %g" s.Coef ]

/// Tokens `[B; T]` 0/1 selected by KL-Cov: the top ⌈ratio·n⌉ (at least 1) valid tokens by
/// covariance. All inputs `[B; T]`; no gradient.
let klCovSelection (s: KlCovSettings) (advantages: Tensor) (logProbs: Tensor) (mask: Tensor) : Tensor =
    use _ = torch.no_grad()
    let lp = sg logProbs
    let aC = advantages - maskedMean advantages mask
    let lC = lp - maskedMean lp mask
    let cov = aC * lC                                                                  // [B; T]
    let n = int (value (mask.sum()))
    if n = 0 then torch.zeros_like(mask)
    else
        let k = max 1 (int (ceil (s.Ratio * float n)))
        let scores = cov.masked_fill(mask.gt(sc (0.0)).logical_not(), sc System.Double.NegativeInfinity)
        let flat = scores.reshape(-1L)
        let struct (_, idx) = flat.topk(k, dim = 0, largest = true, sorted = false)
        let sel = torch.zeros_like(flat).index_fill(0L, idx, sc (1.0))
        sel.reshape(mask.shape) * mask

/// Entropy-Adv (Cheng et al.): A′ = A + min(a·sg(H), |A|/κ).
type EntropyAdvSettings =
    { /// a (paper: 0.4).
      Scale: float
      /// κ (paper: 2).
      Kappa: float }

let validateEntropyAdv (s: EntropyAdvSettings) =
    [ if not (s.Scale >= 0.0) then yield sprintf "entropy_adv scale a must be >= 0, got %g" s.Scale
      if not (s.Kappa > 0.0) then yield sprintf "entropy_adv kappa must be > 0, got %g" s.Kappa ]

/// `advantages [B; T]`, `entropy [B; T]` (no gradient) → shaped advantages `[B; T]`.
let entropyAdvantage (s: EntropyAdvSettings) (advantages: Tensor) (entropy: Tensor) : Tensor =
    let bonus = torch.minimum(sg entropy * s.Scale, advantages.abs() / s.Kappa)
    advantages + bonus
