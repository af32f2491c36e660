/// A policy objective is a composition (SPEC §2–4):
///   advantage map ∘ entropy gate ∘ ratio/advantage shaping ∘ PPO clip ∘ aggregation.
/// `loss` evaluates it on one micro-batch with the global normaliser and batch gate threshold of its mini-batch.
module SimKO.Math.Objective

open TorchSharp
open SimKO.Math.Tensors
open SimKO.Math.Advantages
open SimKO.Math.Gates
open SimKO.Math.Aggregation
open SimKO.Math.Clipping
open SimKO.Math.Shaping
open SimKO.Math.KlPenalty
open SimKO.Math.Regularisers

/// Which tokens carry the policy gradient.
type TokenSelection =
    /// every valid response token (GRPO, SimKO, …).
    | AllValid
    /// only gated (high-entropy) tokens: the forking-tokens baseline.
    | OnlyGated

/// How the ratio/advantages of gated tokens are changed.
type Shaping =
    | NoShaping
    | Simko of SimkoShaping

type Objective =
    { Advantage: AdvantageEstimator
      Gate: EntropyGate
      Selection: TokenSelection
      Shaping: Shaping
      /// Entropy-Adv's advantage bonus, if any.
      EntropyBonus: EntropyAdvSettings option
      /// KL-Cov's penalty, if any.
      KlCov: KlCovSettings option
      Clip: ClipSettings
      Aggregation: Aggregation
      /// KL penalty against the reference policy (β = 0: off; then no reference is needed).
      Kl: KlSettings }

/// Every problem of an objective at once (empty = valid).
let validate (groupSize: int) (o: Objective) : string list =
    [ yield! Advantages.validate groupSize o.Advantage
      yield! Gates.validate o.Gate
      match o.Shaping with
      | Simko s -> yield! Shaping.validate s
      | NoShaping -> ()
      match o.EntropyBonus with Some e -> yield! validateEntropyAdv e | None -> ()
      match o.KlCov with Some k -> yield! validateKlCov k | None -> ()
      yield! Clipping.validate o.Clip
      yield! Aggregation.validate o.Aggregation
      yield! KlPenalty.validate o.Kl ]

/// Top candidates the objective needs from the token statistics (≥ 3 for the Λ^(1..3) metrics).
let topKNeeded (o: Objective) =
    match o.Shaping with
    | Simko s -> max s.K 3
    | NoShaping -> 3

/// Everything a micro-batch needs to know of its whole mini-batch (SPEC §3, §4, §7.8, §7.11),
/// built once per mini-batch by one statistics pass (`context`) before it is split into
/// micro-batches, and handed to every micro-batch's loss, so that micro-batching never moves it.
type MiniBatchContext =
    { /// counts of the whole mini-batch (valid tokens, responses).
      Normaliser: Normaliser
      /// τ of a `BatchQuantile` entropy gate: the q-quantile of the entropy over every valid token
      /// of the mini-batch (`Gates.batchThreshold`). `None`: taken over the micro-batch's own
      /// tokens (right only when it is not split). Ignored by the other gates.
      BatchThreshold: float option
      /// KL-Cov's means and cut-off over the mini-batch (`Regularisers.klCovStats`). `None`: taken
      /// over the micro-batch's own tokens (right only when it is not split).
      KlCov: KlCovStats option
      /// this micro-batch's rows' indices in the mini-batch (KL-Cov's tie order); `None`: 0..B−1.
      Rows: int64[] option }

/// The context of a batch that is its own mini-batch (its counts; τ and KL-Cov's statistics are
/// then taken over it by the loss).
let selfContext (mask: Tensor) : MiniBatchContext =
    { Normaliser = selfNormaliser mask; BatchThreshold = None; KlCov = None; Rows = None }

/// Whether `context` needs the entropy of the current policy (a batch-level gate).
let needsEntropy (o: Objective) = match o.Gate with BatchQuantile _ -> true | AllTokens | ResponseQuantile _ -> false

/// Old log-probs with 0 at masked positions (which may hold anything, NaN included).
let private finiteOld (oldLogProbs: Tensor) (mask: Tensor) =
    torch.where(mask.gt(sc (0.0)), oldLogProbs, torch.zeros_like(oldLogProbs))

/// The statistics pass of one whole mini-batch: `mask [B; T]`, `advantages [B]`, `oldLogProbs
/// [B; T]`, and the current policy's `entropy [B; T]` when `needsEntropy o` (else ignored; pass
/// `None`). No gradient.
let context (o: Objective) (mask: Tensor) (advantages: Tensor) (oldLogProbs: Tensor) (entropy: Tensor option) : MiniBatchContext =
    use _ = torch.no_grad()
    let tau =
        if needsEntropy o then
            match entropy with
            | Some h -> requireShape "entropy" [| mask.shape[0]; mask.shape[1] |] h; batchThreshold o.Gate h mask
            | None -> invalidArg "entropy" "a batch-level entropy gate needs the mini-batch's entropies"
        else None
    let kl =
        o.KlCov |> Option.map (fun k ->
            klCovStats k (advantages.unsqueeze(1L).expand_as(mask).to_type(oldLogProbs.dtype)) (finiteOld oldLogProbs mask) mask)
    { Normaliser = selfNormaliser mask; BatchThreshold = tau; KlCov = kl; Rows = None }

/// One micro-batch, with the context of its whole mini-batch.
type PolicyBatch =
    { /// [B; T; V] current-policy logits; position t is the distribution that produced Tokens[t].
      Logits: Tensor
      /// [B; T] int64 sampled tokens (any value where Mask = 0).
      Tokens: Tensor
      /// [B; T] log π_old(y), recomputed by the trainer before the updates.
      OldLogProbs: Tensor
      /// [B; T] log π_ref(y) of a frozen reference (needed only when Kl.Beta > 0).
      RefLogProbs: Tensor option
      /// [B; T] 1 on response tokens, 0 on prompt and padding.
      Mask: Tensor
      /// [B] one advantage per response (from `Advantages.compute` over the whole batch).
      Advantages: Tensor
      /// counts, τ and KL-Cov statistics of the whole mini-batch (`context`; `selfContext Mask`
      /// when this batch is not split).
      Context: MiniBatchContext }

/// Micro-batch metrics: means over this micro-batch's valid tokens (`Tokens` of them), so a
/// caller combines micro-batches by a token-weighted mean.
type LossMetrics =
    { PolicyLoss: float
      Tokens: float
      ClipFraction: float
      GatedFraction: float
      SmoothedFraction: float
      PushedFraction: float
      KlCovFraction: float
      Entropy: float
      /// mean log π_old − log π over valid tokens (approximate KL of the update).
      ApproxKlOld: float
      /// mean KL estimate against the reference (0 when off).
      KlRef: float
      Lambda: float
      LambdaTopK: float[] }

/// The metrics by name, in one place: the names of `metrics.jsonl`, TensorBoard and the `loss`
/// command. Λ^(k) is `lambda_top1`, `lambda_top2`, … (one per top candidate).
let metricValues (m: LossMetrics) : (string * float) list =
    [ "policy_loss", m.PolicyLoss
      "clip_fraction", m.ClipFraction
      "gated_fraction", m.GatedFraction
      "smoothed_fraction", m.SmoothedFraction
      "pushed_fraction", m.PushedFraction
      "kl_cov_fraction", m.KlCovFraction
      "entropy", m.Entropy
      "approx_kl_old", m.ApproxKlOld
      "kl_ref", m.KlRef
      "lambda", m.Lambda
      yield! m.LambdaTopK |> Array.mapi (fun k v -> sprintf "lambda_top%d" (k + 1), v) ]

type LossOutput =
    { /// scalar loss of the micro-batch (with gradient); summing over micro-batches gives the
      /// mini-batch loss.
      Loss: Tensor
      Metrics: LossMetrics
      /// per-token statistics of the current policy, for callers that report more.
      Stats: TokenStats.TokenStats }

/// Shapes, device and dtype of every input against `like` ([B; T] or [B; T; V], the policy's
/// floating dtype and device): names the offending input and what was expected (SPEC §8).
let private checkInputs (like: Tensor) (likeName: string) (b: PolicyBatch) =
    let bt = [| like.shape[0]; like.shape[1] |]
    requireShape "tokens" bt b.Tokens
    requireShape "old_logprobs" bt b.OldLogProbs
    requireShape "mask" bt b.Mask
    requireShape "advantages" [| bt[0] |] b.Advantages
    b.RefLogProbs |> Option.iter (requireShape "ref_logprobs" bt)
    let onDevice (name: string) (t: Tensor) =
        if not (sameDevice t like) then
            invalidArg name (sprintf "tensor '%s' is on %O, expected the policy's device %O (where '%s' is)" name t.device like.device likeName)
    let ofType (name: string) (dtype: torch.ScalarType) (t: Tensor) =
        onDevice name t
        if t.dtype <> dtype then
            invalidArg name (sprintf "tensor '%s' has dtype %O, expected %O (the dtype of '%s')" name t.dtype dtype likeName)
    onDevice "tokens" b.Tokens
    if b.Tokens.dtype <> torch.ScalarType.Int64 then
        invalidArg "tokens" (sprintf "tensor 'tokens' has dtype %O, expected Int64" b.Tokens.dtype)
    ofType "old_logprobs" like.dtype b.OldLogProbs
    ofType "mask" like.dtype b.Mask
    ofType "advantages" like.dtype b.Advantages
    b.RefLogProbs |> Option.iter (ofType "ref_logprobs" like.dtype)

let private checkBatch (b: PolicyBatch) =
    requireShape "logits" [| -1L; -1L; -1L |] b.Logits
    checkInputs b.Logits "logits" b

/// Masked positions may hold any token id: token 0 there instead (`tokens`, `mask` [B; T]).
let validTokens (tokens: Tensor) (mask: Tensor) : Tensor =
    torch.where(mask.gt(sc (0.0)), tokens, torch.zeros_like(tokens))

let private lossWith (o: Objective) (stats: TokenStats.TokenStats) (b: PolicyBatch) : LossOutput =
    if o.Kl.Beta > 0.0 && b.RefLogProbs.IsNone then
        invalidArg "RefLogProbs" "kl_beta > 0 needs reference log-probs"
    let mask = b.Mask
    let valid = mask.gt(sc (0.0))
    let tokens = validTokens b.Tokens mask
    // Masked positions may hold anything (even NaN/∞ in old log-probs): there the old log-prob is
    // replaced by the current one (detached), so the ratio is 1 and nothing non-finite enters.
    let oldLogp = torch.where(valid, b.OldLogProbs, stats.LogProbs.detach())
    let logRatio = stats.LogProbs - oldLogp
    let gamma = logRatio.exp()                                                        // γ [B; T]
    let adv0 = b.Advantages.unsqueeze(1L).expand_as(mask).to_type(gamma.dtype)      // [B; T]
    let adv =
        match o.EntropyBonus with
        | Some e -> entropyAdvantage e adv0 stats.Entropy
        | None -> adv0
    let w = gate o.Gate b.Context.BatchThreshold stats.Entropy mask                           // [B; T]
    let ratio, shapedAdv, smoothed, pushed =
        match o.Shaping with
        | NoShaping -> gamma, adv, torch.zeros_like(mask), torch.zeros_like(mask)
        | Simko s ->
            let sh = Shaping.apply s w gamma adv tokens stats.TopKIndices stats.TopKLogProbs
            sh.Ratio, sh.Advantages, sh.SmoothedTokens, sh.PushedTokens
    let clipped = surrogate o.Clip ratio shapedAdv
    let tokLoss, covSel =
        match o.KlCov with
        | None -> clipped.Loss, torch.zeros_like(mask)
        | Some k ->
            // covariance of the update's inputs (response advantages, old log-probs) with the
            // mini-batch's means and cut-off: the same selection in any split (SPEC §7.11)
            let covOld = finiteOld b.OldLogProbs mask
            let st = match b.Context.KlCov with Some st -> st | None -> klCovStats k adv0 covOld mask
            let rows =
                match b.Context.Rows with
                | Some r -> torch.tensor(r, device = mask.device)
                | None -> torch.arange(mask.shape[0], device = mask.device)
            let sel = klCovSelect st rows adv0 covOld mask
            let penalised = shapedAdv.neg() * ratio + (stats.LogProbs - oldLogp).abs() * k.Coef
            torch.where(sel.gt(sc (0.0)), penalised, clipped.Loss), sel
    let selection =
        match o.Selection with
        | AllValid -> mask
        | OnlyGated -> w
    let klTok =
        match b.RefLogProbs with
        | Some r when o.Kl.Beta > 0.0 -> Some(estimate o.Kl.Estimator stats.LogProbs (torch.where(valid, r, stats.LogProbs.detach())))
        | _ -> None
    let policyLoss = aggregate o.Aggregation b.Context.Normaliser (tokLoss * selection) mask
    let total =
        match klTok with
        | Some kl -> policyLoss + aggregate o.Aggregation b.Context.Normaliser kl mask * o.Kl.Beta
        | None -> policyLoss
    let metrics =
        use _ = torch.no_grad()
        let mean t = value (maskedMean t mask)
        let lambdas = TokenStats.lambdas stats mask
        { PolicyLoss = value policyLoss
          Tokens = lambdas.Tokens
          ClipFraction = mean (clipped.Clipped * selection)
          GatedFraction = mean w
          SmoothedFraction = mean smoothed
          PushedFraction = mean pushed
          KlCovFraction = mean covSel
          Entropy = lambdas.Entropy
          ApproxKlOld = mean (logRatio.detach().neg())
          KlRef = (match klTok with Some kl -> mean (kl.detach()) | None -> 0.0)
          Lambda = lambdas.Lambda
          LambdaTopK = lambdas.TopK }
    { Loss = total; Metrics = metrics; Stats = stats }

/// The loss of objective `o` on micro-batch `b`, from token statistics computed elsewhere (the
/// fused, chunked LM head `LmHead.tokenStats` over `validTokens b.Tokens b.Mask`, with at least
/// `topKNeeded o` candidates). `b.Logits` is not read: pass `noLogits`.
let lossOfStats (o: Objective) (stats: TokenStats.TokenStats) (b: PolicyBatch) : LossOutput =
    checkInputs stats.LogProbs "log-probs of the token statistics" b
    lossWith o stats b

/// A placeholder for `PolicyBatch.Logits` when the loss is taken by `lossOfStats` (never read).
let noLogits : Tensor = torch.empty(0L, 0L, 0L).DetachFromDisposeScope()

/// The loss of objective `o` on micro-batch `b`.
let loss (o: Objective) (b: PolicyBatch) : LossOutput =
    checkBatch b
    let tokens = validTokens b.Tokens b.Mask
    lossWith o (TokenStats.compute (min (topKNeeded o) (int b.Logits.shape[2])) b.Logits tokens) b
