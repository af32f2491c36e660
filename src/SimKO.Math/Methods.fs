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

/// A method's name (as in configs and `--set method=`) and how reports show it: the one place
/// each method is named.
let private names' (m: Method) =
    match m with
    | Grpo _ -> "grpo", "GRPO"
    | Simko _ -> "simko", "SimKO"
    | Psr _ -> "psr", "PSR"
    | Nsr _ -> "nsr", "NSR"
    | WReinforce _ -> "w-reinforce", "W-REINFORCE"
    | KlCov _ -> "kl-cov", "KL-Cov"
    | EntropyAdv _ -> "entropy-adv", "Entropy-Adv"
    | Forking _ -> "forking", "Forking"
    | PassK _ -> "passk", "P@k T."
    | DrGrpo _ -> "dr-grpo", "Dr. GRPO"

/// The name of a method in configs and on the command line.
let name (m: Method) = fst (names' m)

/// The name of a method in report tables and plots.
let displayName (m: Method) = snd (names' m)

/// Every method with its paper defaults.
let defaults : Method list =
    [ Grpo { Common = commonDefaults }
      Simko simkoDefaults
      Psr { Common = commonDefaults }
      Nsr { Common = commonDefaults }
      WReinforce { Common = commonDefaults; LambdaW = 0.1 }
      KlCov { Common = commonDefaults; KlCov = { Ratio = 2e-3; Coef = 1.0 } }
      EntropyAdv { Common = commonDefaults; EntropyAdv = { Scale = 0.4; Kappa = 2.0 } }
      Forking { Common = commonDefaults; Q = 0.8 }
      PassK { Common = commonDefaults; K = 4 }
      DrGrpo { Common = { commonDefaults with Aggregation = SeqMeanTokenSumNorm 1024.0 }; MaxLength = 1024.0 } ]

/// Every method by name, with its paper defaults.
let all : (string * Method) list = defaults |> List.map (fun m -> name m, m)

let names = all |> List.map fst

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
