/// How per-token losses become one number (SPEC §2 "Aggregation"). The normalisers are explicit
/// arguments: they count the whole mini-batch, so splitting it into micro-batches (or data-parallel
/// ranks) and summing the micro-batch losses gives the full-batch loss and gradient (SPEC §7.8).
module SimKO.Math.Aggregation

open TorchSharp
open SimKO.Math.Tensors

type Aggregation =
    /// Σ mask·L / (valid tokens of the whole mini-batch). SimKO's and verl's default.
    | TokenMean
    /// 1/N_seq Σ_i 1/|y_i| Σ_l L (the paper's J_GRPO).
    | SeqMeanTokenMean
    /// 1/N_seq Σ_i Σ_l L / maxLength (Dr. GRPO; `maxLength` a constant, e.g. the response budget).
    | SeqMeanTokenSumNorm of maxLength: float

/// Counts of the whole mini-batch the loss is normalised by.
type Normaliser =
    { /// valid response tokens in the mini-batch (all micro-batches together).
      GlobalTokens: float
      /// responses in the mini-batch (all micro-batches together).
      GlobalSequences: float }

let validate (a: Aggregation) : string list =
    match a with
    | SeqMeanTokenSumNorm m when not (m > 0.0) -> [ sprintf "seq-mean-token-sum-norm needs max_length > 0, got %g" m ]
    | _ -> []

/// The normaliser of a batch that is not split: its own counts. `mask [B; T]`.
let selfNormaliser (mask: Tensor) : Normaliser =
    { GlobalTokens = value (mask.sum()); GlobalSequences = float mask.shape[0] }

/// Aggregate `lossTok [B; T]` over `mask [B; T]` (0/1; masked positions never contribute,
/// whatever their values, including NaN/∞).
let aggregate (aggregation: Aggregation) (norm: Normaliser) (lossTok: Tensor) (mask: Tensor) : Tensor =
    let valid = mask.gt(sc (0.0))
    let l = torch.where(valid, lossTok, torch.zeros_like(lossTok)) * mask                 // [B; T]
    match aggregation with
    | TokenMean -> l.sum() / max norm.GlobalTokens 1.0
    | SeqMeanTokenMean ->
        let perSeq = l.sum(1L) / mask.sum(1L).clamp_min(sc (1.0))                  // [B]
        perSeq.sum() / max norm.GlobalSequences 1.0
    | SeqMeanTokenSumNorm maxLength -> l.sum() / maxLength / max norm.GlobalSequences 1.0

/// The name of an aggregation in configs: token-mean, seq-mean-token-mean, seq-mean-token-sum-norm.
let name (a: Aggregation) =
    match a with
    | TokenMean -> "token-mean"
    | SeqMeanTokenMean -> "seq-mean-token-mean"
    | SeqMeanTokenSumNorm _ -> "seq-mean-token-sum-norm"
