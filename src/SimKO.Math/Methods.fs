/// The named methods of the paper's comparisons (SPEC §2–4), each a settings record with the
/// paper's defaults, a `validate` that reports every bad field at once, and the `Objective` it
/// composes. New variants are built the same way: start from a method's objective and change a
/// field (see the README).
module SimKO.Math.Methods

open SimKO.Math.Advantages
open SimKO.Math.Gates
open SimKO.Math.Aggregation
open SimKO.Math.Clipping
open SimKO.Math.Shaping
open SimKO.Math.KlPenalty
open SimKO.Math.Regularisers
open SimKO.Math.Objective

/// Settings every method shares.
type CommonSettings =
    { /// PPO clip (ε_low = ε_high = 0.2).
      Clip: ClipSettings
      /// token-mean (SimKO, verl default).
      Aggregation: Aggregation
      /// KL penalty (β = 0: off, as in the SimKO runs).
      Kl: KlSettings }

let commonDefaults = { Clip = Clipping.defaults; Aggregation = TokenMean; Kl = KlPenalty.off }

/// GRPO (SPEC §2): group-normalised advantages, PPO clip.
type GrpoSettings = { Common: CommonSettings }

/// SimKO (SPEC §3): top-K label smoothing on gated positive tokens, λ push on gated top-1
/// tokens of negative responses. Paper defaults for math: K 3, α 0.01, λ 1.1, q 0.8, per-response τ.
type SimkoSettings =
    { Common: CommonSettings
      /// α ∈ [0, 1] (0.01; 0.005 for logic tasks).
      Alpha: float
      /// K ≥ 1 (3).
      K: int
      /// λ (1.1; 1.05 for Qwen2.5-7B and logic).
      Lambda: float
      /// q ∈ [0, 1]: entropy quantile of the gate (0.8: the top 20 % of each response).
      Q: float
      /// per response (the authors' code) or over the batch.
      BatchGate: bool }

/// W-REINFORCE (Zhu et al.): A = +λ_w correct, −1 incorrect.
type WReinforceSettings = { Common: CommonSettings; LambdaW: float }

/// KL-Cov (Cui et al.).
type KlCovMethodSettings = { Common: CommonSettings; KlCov: KlCovSettings }

/// Entropy-Adv (Cheng et al.).
type EntropyAdvMethodSettings = { Common: CommonSettings; EntropyAdv: EntropyAdvSettings }

/// Forking tokens (Wang et al.): policy gradient on the top ρ = 20 % entropy tokens of the batch.
type ForkingSettings = { Common: CommonSettings; Q: float }

/// Pass@k training (Chen et al.): the pass@k objective's advantages.
type PassKSettings = { Common: CommonSettings; K: int }

/// Dr. GRPO: no std division, seq-mean-token-sum-norm with a constant max length.
type DrGrpoSettings = { Common: CommonSettings; MaxLength: float }

type Method =
    | Grpo of GrpoSettings
    | Simko of SimkoSettings
    | Psr of GrpoSettings
    | Nsr of GrpoSettings
    | WReinforce of WReinforceSettings
    | KlCov of KlCovMethodSettings
    | EntropyAdv of EntropyAdvMethodSettings
    | Forking of ForkingSettings
    | PassK of PassKSettings
    | DrGrpo of DrGrpoSettings

let simkoDefaults =
    { Common = commonDefaults; Alpha = 0.01; K = 3; Lambda = 1.1; Q = 0.8; BatchGate = false }

/// Every method name, with its paper defaults.
let all : (string * Method) list =
    [ "grpo", Grpo { Common = commonDefaults }
      "simko", Simko simkoDefaults
      "psr", Psr { Common = commonDefaults }
      "nsr", Nsr { Common = commonDefaults }
      "w-reinforce", WReinforce { Common = commonDefaults; LambdaW = 0.1 }
      "kl-cov", KlCov { Common = commonDefaults; KlCov = { Ratio = 2e-3; Coef = 1.0 } }
      "entropy-adv", EntropyAdv { Common = commonDefaults; EntropyAdv = { Scale = 0.4; Kappa = 2.0 } }
      "forking", Forking { Common = commonDefaults; Q = 0.8 }
      "passk", PassK { Common = commonDefaults; K = 4 }
      "dr-grpo", DrGrpo { Common = { commonDefaults with Aggregation = SeqMeanTokenSumNorm 1024.0 }; MaxLength = 1024.0 } ]

let names = all |> List.map fst

let name (m: Method) =
    match m with
    | Grpo _ -> "grpo" | Simko _ -> "simko" | Psr _ -> "psr" | Nsr _ -> "nsr"
    | WReinforce _ -> "w-reinforce" | KlCov _ -> "kl-cov" | EntropyAdv _ -> "entropy-adv"
    | Forking _ -> "forking" | PassK _ -> "passk" | DrGrpo _ -> "dr-grpo"

/// The method of that name with its paper defaults; an unknown name lists the valid ones.
let byName (n: string) : Result<Method, string> =
    match List.tryFind (fun (k, _) -> k = n) all with
    | Some (_, m) -> Ok m
    | None -> Error(sprintf "unknown method '%s'; valid: %s" n (String.concat ", " names))

let common (m: Method) =
    match m with
    | Grpo s | Psr s | Nsr s -> s.Common
    | Simko s -> s.Common
    | WReinforce s -> s.Common
    | KlCov s -> s.Common
    | EntropyAdv s -> s.Common
    | Forking s -> s.Common
    | PassK s -> s.Common
    | DrGrpo s -> s.Common

let private grpoLike (c: CommonSettings) advantage =
    { Advantage = advantage; Gate = AllTokens; Selection = AllValid; Shaping = NoShaping
      EntropyBonus = None; KlCov = None; Clip = c.Clip; Aggregation = c.Aggregation; Kl = c.Kl }

/// The composition a method stands for.
let objective (m: Method) : Objective =
    match m with
    | Grpo s -> grpoLike s.Common (GroupNormalised true)
    | Simko s ->
        { grpoLike s.Common (GroupNormalised true) with
            Gate = (if s.BatchGate then BatchQuantile s.Q else ResponseQuantile s.Q)
            Shaping = Shaping.Simko { Alpha = s.Alpha; K = s.K; Lambda = s.Lambda } }
    | Psr s -> grpoLike s.Common PositiveOnly
    | Nsr s -> grpoLike s.Common NegativeOnly
    | WReinforce s -> grpoLike s.Common (WeightedReinforce s.LambdaW)
    | KlCov s -> { grpoLike s.Common (GroupNormalised true) with KlCov = Some s.KlCov }
    | EntropyAdv s -> { grpoLike s.Common (GroupNormalised true) with EntropyBonus = Some s.EntropyAdv }
    | Forking s -> { grpoLike s.Common (GroupNormalised true) with Gate = BatchQuantile s.Q; Selection = OnlyGated }
    | PassK s -> grpoLike s.Common (PassAtKTraining s.K)
    | DrGrpo s -> { grpoLike s.Common (GroupNormalised false) with Aggregation = SeqMeanTokenSumNorm s.MaxLength }

/// Every bad field of a method for a group size, at once (empty = valid).
let validate (groupSize: int) (m: Method) : string list =
    Objective.validate groupSize (objective m)

/// A setting override from JSON or the command line.
type SettingValue =
    | Number of float
    | Text of string

/// Apply overrides by name (e.g. "alpha", "k", "lambda", "q", "clip_low", "clip_high",
/// "dual_clip", "aggregation", "kl_beta", "kl_estimator", "lambda_w", "ratio", "coef", "a",
/// "kappa", "max_length", "gate"). Every unknown or ill-typed key is reported at once.
let withOverrides (overrides: (string * SettingValue) list) (m: Method) : Result<Method, string list> =
    let mutable method = m
    let errors = ResizeArray<string>()
    let bad key (v: SettingValue) expected = errors.Add(sprintf "setting '%s' = %A: expected %s" key v expected)
    let setCommon f =
        method <-
            match method with
            | Grpo s -> Grpo { s with Common = f s.Common }
            | Psr s -> Psr { s with Common = f s.Common }
            | Nsr s -> Nsr { s with Common = f s.Common }
            | Simko s -> Simko { s with Common = f s.Common }
            | WReinforce s -> WReinforce { s with Common = f s.Common }
            | KlCov s -> KlCov { s with Common = f s.Common }
            | EntropyAdv s -> EntropyAdv { s with Common = f s.Common }
            | Forking s -> Forking { s with Common = f s.Common }
            | PassK s -> PassK { s with Common = f s.Common }
            | DrGrpo s -> DrGrpo { s with Common = f s.Common }
    let isInt (x: float) = x = round x
    for key, v in overrides do
        match key, v, method with
        | "clip_low", Number x, _ -> setCommon (fun c -> { c with Clip = { c.Clip with Low = x } })
        | "clip_high", Number x, _ -> setCommon (fun c -> { c with Clip = { c.Clip with High = x } })
        | "dual_clip", Number x, _ -> setCommon (fun c -> { c with Clip = { c.Clip with Dual = Some x } })
        | "kl_beta", Number x, _ -> setCommon (fun c -> { c with Kl = { c.Kl with Beta = x } })
        | "kl_estimator", Text t, _ ->
            match KlPenalty.parse t with
            | Ok e -> setCommon (fun c -> { c with Kl = { c.Kl with Estimator = e } })
            | Error e -> errors.Add e
        | "aggregation", Text t, _ ->
            let maxLen = match method with DrGrpo d -> d.MaxLength | _ -> 1024.0
            match Aggregation.parse t maxLen with
            | Ok a -> setCommon (fun c -> { c with Aggregation = a })
            | Error e -> errors.Add e
        | "alpha", Number x, Simko s -> method <- Simko { s with Alpha = x }
        | "k", Number x, Simko s when isInt x -> method <- Simko { s with K = int x }
        | "lambda", Number x, Simko s -> method <- Simko { s with Lambda = x }
        | "q", Number x, Simko s -> method <- Simko { s with Q = x }
        | "gate", Text "batch", Simko s -> method <- Simko { s with BatchGate = true }
        | "gate", Text "response", Simko s -> method <- Simko { s with BatchGate = false }
        | "q", Number x, Forking s -> method <- Forking { s with Q = x }
        | "lambda_w", Number x, WReinforce s -> method <- WReinforce { s with LambdaW = x }
        | "ratio", Number x, KlCov s -> method <- KlCov { s with KlCov = { s.KlCov with Ratio = x } }
        | "coef", Number x, KlCov s -> method <- KlCov { s with KlCov = { s.KlCov with Coef = x } }
        | "a", Number x, EntropyAdv s -> method <- EntropyAdv { s with EntropyAdv = { s.EntropyAdv with Scale = x } }
        | "kappa", Number x, EntropyAdv s -> method <- EntropyAdv { s with EntropyAdv = { s.EntropyAdv with Kappa = x } }
        | "k", Number x, PassK s when isInt x -> method <- PassK { s with K = int x }
        | "max_length", Number x, DrGrpo s ->
            method <- DrGrpo { s with MaxLength = x; Common = { s.Common with Aggregation = SeqMeanTokenSumNorm x } }
        | ("clip_low" | "clip_high" | "dual_clip" | "kl_beta"), _, _ -> bad key v "a number"
        | ("kl_estimator" | "aggregation"), _, _ -> bad key v "a name"
        | "k", Number _, (Simko _ | PassK _) -> bad key v "an integer"
        | "gate", _, Simko _ -> bad key v "\"response\" or \"batch\""
        | _ -> errors.Add(sprintf "setting '%s' does not apply to method '%s'" key (name method))
    if errors.Count = 0 then Ok method else Error(List.ofSeq errors)
