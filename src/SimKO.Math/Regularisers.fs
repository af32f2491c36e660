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

/// KL-Cov's statistics over a whole mini-batch (SPEC §4, §7.11), taken once before it is split
/// into micro-batches (`klCovStats`) so that `micro_batch_size` never moves the selection: the
/// means Ā and mean log π_old over its valid tokens, and the cut-off, the ⌈ratio·n⌉-th largest
/// centred covariance (A − Ā)(log π_old − mean log π_old).
///
/// The covariance is taken on the inputs of the update, the response advantages and the old
/// log-probs (the trainer's recomputed log π_old, identical whatever the split), not on the current
/// policy's log-probs: so a micro-batch recomputes every token's covariance bit for bit as the
/// statistics pass did, and no extra forward pass is needed. (Within the first mini-batch of the
/// first PPO epoch π_old = π, the covariance of Cui et al.)
type KlCovStats =
    { AdvantageMean: float
      LogProbMean: float
      /// the ⌈ratio·n⌉-th largest covariance; +∞ when no token is valid (nothing selected).
      CutOff: float
      /// ties at the cut-off are taken in mini-batch order, row then position: a token tied with
      /// the cut-off is selected iff its key row·Width + position is ≤ TieLimit.
      TieLimit: float
      /// response positions per row of the mini-batch (the key's stride).
      Width: int64 }

/// Centred covariance `[B; T]` of `advantages`, `logProbs` (`[B; T]`) with the given means.
let klCovCovariance (st: KlCovStats) (advantages: Tensor) (logProbs: Tensor) : Tensor =
    use _ = torch.no_grad()
    (sg advantages - sc st.AdvantageMean) * (sg logProbs - sc st.LogProbMean)

/// The statistics of `klCovSelect` over every valid token of `advantages`, `logProbs`, `mask`
/// (`[B; T]`, the whole mini-batch).
let klCovStats (s: KlCovSettings) (advantages: Tensor) (logProbs: Tensor) (mask: Tensor) : KlCovStats =
    use _ = torch.no_grad()
    let n = int (value (mask.sum()))
    let width = mask.shape[1]
    if n = 0 then { AdvantageMean = 0.0; LogProbMean = 0.0; CutOff = System.Double.PositiveInfinity; TieLimit = -1.0; Width = width }
    else
        let means = { AdvantageMean = value (maskedMean (sg advantages) mask); LogProbMean = value (maskedMean (sg logProbs) mask)
                      CutOff = 0.0; TieLimit = 0.0; Width = width }
        let cov = klCovCovariance means advantages logProbs
        let k = max 1 (int (ceil (s.Ratio * float n)))
        let valid = mask.gt(sc (0.0))
        let struct (top, _) = cov.masked_select(valid).topk(k, dim = 0, largest = true, sorted = true)
        let cut = value (top.narrow(0L, int64 (k - 1), 1L))
        let above = int (value (cov.gt(sc cut).logical_and(valid).sum()))
        // the (k − above) first tied tokens in row-major order: the last one's flat index
        let tiedIdx = cov.eq(sc cut).logical_and(valid).reshape(-1L).nonzero().squeeze(1L)
        let limit = value (tiedIdx.narrow(0L, int64 (k - above - 1), 1L))
        { means with CutOff = cut; TieLimit = limit }

/// Tokens `[B; T]` 0/1 selected by KL-Cov with mini-batch statistics `st`: every valid token
/// whose covariance is above the cut-off, and those tied with it up to ⌈ratio·n⌉ in all, taken in
/// the mini-batch's row-major order (`rows [B]` int64: each row's index in the mini-batch), so
/// exactly ⌈ratio·n⌉ tokens, the same ones in any split. No gradient.
let klCovSelect (st: KlCovStats) (rows: Tensor) (advantages: Tensor) (logProbs: Tensor) (mask: Tensor) : Tensor =
    use _ = torch.no_grad()
    let cov = klCovCovariance st advantages logProbs
    let t = mask.shape[1]
    let key = (rows.unsqueeze(1L) * st.Width + torch.arange(t, device = rows.device).unsqueeze(0L)).to_type(torch.ScalarType.Float64) // [B; T]
    let tieTaken = cov.eq(sc st.CutOff).logical_and(key.le(sc st.TieLimit))
    cov.gt(sc st.CutOff).logical_or(tieTaken).to_type(mask.dtype) * mask

/// KL-Cov's selection over these tokens alone (`klCovStats` then `klCovSelect` on one batch):
/// right only for a whole mini-batch.
let klCovSelection (s: KlCovSettings) (advantages: Tensor) (logProbs: Tensor) (mask: Tensor) : Tensor =
    klCovSelect (klCovStats s advantages logProbs mask) (torch.arange(mask.shape[0], device = mask.device)) advantages logProbs mask

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
