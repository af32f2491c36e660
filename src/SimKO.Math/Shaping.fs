/// SimKO's token shaping (SPEC §3, paper Eq. 3, 6 and §4.3), applied on gated tokens only.
module SimKO.Math.Shaping

open TorchSharp
open SimKO.Math.Tensors

type SimkoShaping =
    { /// α: weight moved from the sampled token to the top-K candidates (paper: 0.01; 0.005 logic).
      Alpha: float
      /// K: number of top candidates (paper: 3).
      K: int
      /// λ: advantage scale on gated top-1 tokens of negative responses (paper: 1.1; 1.05 logic).
      Lambda: float }

let validate (s: SimkoShaping) : string list =
    [ if not (s.Alpha >= 0.0 && s.Alpha <= 1.0) then yield sprintf "alpha must be in [0, 1], got %g" s.Alpha
      if s.K < 1 then yield sprintf "k must be >= 1, got %d" s.K
      if not (s.Lambda > 0.0) then yield sprintf "lambda must be > 0 (1 = GRPO, > 1 pushes harder), got %g" s.Lambda ]

/// γ_pos = (1 − α)·γ + (α/K)·Σ_k sg(γ)·exp(log p[c_k] − sg(log p[c_k]))   (Eq. 6).
/// Its value equals γ exactly; its gradient is sg(γ)·[(1−α)∇log p(y) + (α/K)Σ_k ∇log p(c_k)].
/// `gamma [B; T]` = exp(logp − logp_old) with gradient, `topKLogProbs [B; T; K]` with gradient.
let gammaPos (alpha: float) (gamma: Tensor) (topKLogProbs: Tensor) : Tensor =
    let k = float topKLogProbs.shape[2]
    let unit = (topKLogProbs - sg topKLogProbs).exp()                                  // [B; T; K], value 1
    let smoothed = sg(gamma).unsqueeze(-1L) * unit                                     // [B; T; K], value γ
    gamma * (1.0 - alpha) + smoothed.sum(-1L) * (alpha / k)

/// The shaped ratio and advantages of SimKO.
type Shaped =
    { /// [B; T] γ̃: γ_pos on gated positive tokens, γ elsewhere.
      Ratio: Tensor
      /// [B; T] A, times λ on gated negative tokens whose sampled token is the top-1 candidate.
      Advantages: Tensor
      /// [B; T] 0/1 gated tokens of positive responses (top-K smoothing applied).
      SmoothedTokens: Tensor
      /// [B; T] 0/1 gated top-1 tokens of negative responses (λ applied).
      PushedTokens: Tensor }

/// Apply SimKO on gated tokens. `gate [B; T]` 0/1, `gamma [B; T]`, `advantages [B; T]`,
/// `tokens [B; T]` int64, `topKIndices`/`topKLogProbs [B; T; K']` with K' ≥ shaping.K.
let apply (s: SimkoShaping) (gate: Tensor) (gamma: Tensor) (advantages: Tensor)
          (tokens: Tensor) (topKIndices: Tensor) (topKLogProbs: Tensor) : Shaped =
    let gated = gate.gt(sc (0.0))
    let positive = gated.logical_and(advantages.gt(sc (0.0)))
    let top1 = tokens.eq(topKIndices.select(2L, 0L))
    let pushed = gated.logical_and(advantages.lt(sc (0.0))).logical_and(top1)
    let topK = topKLogProbs.narrow(2L, 0L, int64 s.K)
    { Ratio = torch.where(positive, gammaPos s.Alpha gamma topK, gamma)
      Advantages = torch.where(pushed, advantages * s.Lambda, advantages)
      SmoothedTokens = asFloat gamma positive
      PushedTokens = asFloat gamma pushed }
