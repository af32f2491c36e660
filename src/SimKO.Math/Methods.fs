/// The named methods of the paper's comparisons (SPEC §2–4). A method is one value, a `MethodDef`:
/// its name, how reports show it, its settings record with the paper's defaults, the settings
/// table (name, doc, source, kind: `Settings.Setting`), a `validate`, and the `Objective` it
/// builds. `all` is the one list of methods: `train`, `reproduce --methods`, `loss`, `--help` and
/// the reports read it. Adding a method is adding one value to it (see the README).
module SimKO.Math.Methods

open System
open SimKO.Math.Advantages
open SimKO.Math.Gates
open SimKO.Math.Aggregation
open SimKO.Math.Clipping
open SimKO.Math.Shaping
open SimKO.Math.KlPenalty
open SimKO.Math.Regularisers
open SimKO.Math.Objective
open SimKO.Math.Settings

/// Settings every method shares.
type CommonSettings =
    { /// PPO clip (ε_low = ε_high = 0.2).
      Clip: ClipSettings
      /// token-mean (SimKO, verl default).
      Aggregation: Aggregation
      /// KL penalty (β = 0: off, as in the SimKO runs).
      Kl: KlSettings }

let commonDefaults = { Clip = Clipping.defaults; Aggregation = TokenMean; Kl = KlPenalty.off }

let private aggregations = [ TokenMean; SeqMeanTokenMean; SeqMeanTokenSumNorm 1024.0 ]

/// The settings every method has (`--set method.clip_high=0.28`).
let commonSettings : Setting<CommonSettings> list =
    [ number "clip_low" "PPO clip ε_low" "PPO, 0.2" (fun c -> c.Clip.Low) (fun x c -> { c with Clip = { c.Clip with Low = x } })
      number "clip_high" "PPO clip ε_high" "PPO 0.2; DAPO's clip-higher 0.28" (fun c -> c.Clip.High) (fun x c -> { c with Clip = { c.Clip with High = x } })
      numberOrOff "dual_clip" "dual-clip bound c for negative advantages" "off" (fun c -> c.Clip.Dual) (fun x c -> { c with Clip = { c.Clip with Dual = x } })
      number "kl_beta" "KL-to-reference weight β" "0: off, as in the SimKO runs" (fun c -> c.Kl.Beta) (fun x c -> { c with Kl = { c.Kl with Beta = x } })
      choice "kl_estimator" "k1, k2 or k3" "Schulman's estimators" KlPenalty.name [ K1; K2; K3 ] (fun c -> c.Kl.Estimator) (fun e c -> { c with Kl = { c.Kl with Estimator = e } })
      choice "aggregation" "token-mean, seq-mean-token-mean or seq-mean-token-sum-norm" "token-mean: SimKO, verl" Aggregation.name aggregations
          (fun c -> c.Aggregation) (fun a c -> { c with Aggregation = a }) ]

/// A method, declared once. 'S is its own settings record (those not every method shares).
type MethodDef<'S> =
    { /// the name in configs, `--set method=` and `reproduce --methods`.
      Name: string
      /// how reports and plots show it.
      Label: string
      /// one line: what it is and where it comes from.
      Doc: string
      /// the paper's defaults of its own settings.
      Defaults: 'S
      /// its common settings (most methods: `commonDefaults`).
      CommonDefaults: CommonSettings
      /// its own settings by name (`--set method.<name>=`).
      Settings: Setting<'S> list
      /// problems of its own settings beyond the objective's checks (empty = valid).
      Validate: 'S -> string list
      /// the composition it stands for.
      Objective: CommonSettings -> 'S -> Objective }

/// A configured method: a definition with its settings type erased, so every method fits in one
/// list. Two methods are equal when name, common and own settings are.
[<CustomEquality; NoComparison>]
type Method =
    { Name: string
      Label: string
      Doc: string
      Common: CommonSettings
      /// the own settings record, boxed (`ownOf def m` reads it typed).
      Own: obj
      Ops: MethodOps }
    override m.Equals(o) =
        match o with
        | :? Method as n -> m.Name = n.Name && m.Common = n.Common && Object.Equals(m.Own, n.Own)
        | _ -> false
    override m.GetHashCode() = hash (m.Name, m.Common)
    override m.ToString() = sprintf "%s %A %A" m.Name m.Own m.Common

/// What a definition does, over the erased method.
and [<NoEquality; NoComparison>] MethodOps =
    { OwnSettings: Setting<Method> list
      Objective: Method -> Objective
      Validate: Method -> string list }

/// Methods without settings of their own.
type NoSettings = NoSettings

/// A definition as a method with its defaults (the value to put into the list).
let define (d: MethodDef<'S>) : Method =
    let own (m: Method) = unbox<'S> m.Own
    { Name = d.Name; Label = d.Label; Doc = d.Doc; Common = d.CommonDefaults; Own = box d.Defaults
      Ops =
        { OwnSettings = d.Settings |> Settings.lift own (fun s m -> { m with Own = box s })
          Objective = (fun m -> d.Objective m.Common (own m))
          Validate = (fun m -> d.Validate (own m)) } }

/// The method of a definition with these own settings.
let make (d: MethodDef<'S>) (settings: 'S) : Method = { define d with Own = box settings }

/// The own settings of a method, typed, if it is of this definition.
let ownOf (d: MethodDef<'S>) (m: Method) : 'S option = if m.Name = d.Name then Some(unbox<'S> m.Own) else None

let private grpoLike (c: CommonSettings) advantage =
    { Advantage = advantage; Gate = AllTokens; Selection = AllValid; Shaping = NoShaping
      EntropyBonus = None; KlCov = None; Clip = c.Clip; Aggregation = c.Aggregation; Kl = c.Kl }

let private noChecks _ = []

/// GRPO (SPEC §2): group-normalised advantages, PPO clip.
let grpo : MethodDef<NoSettings> =
    { Name = "grpo"; Label = "GRPO"; Doc = "group-normalised advantages, PPO clip (Shao et al. 2024)"
      Defaults = NoSettings; CommonDefaults = commonDefaults; Settings = []; Validate = noChecks
      Objective = fun c _ -> grpoLike c (GroupNormalised true) }

/// SimKO (SPEC §3): top-K label smoothing on gated positive tokens, λ push on gated top-1 tokens
/// of negative responses.
type SimkoSettings =
    { /// α ∈ [0, 1] (0.01; 0.005 for logic tasks).
      Alpha: float
      /// K ≥ 1 (3).
      K: int
      /// λ (1.1; 1.05 for Qwen2.5-7B and logic).
      Lambda: float
      /// q ∈ [0, 1]: entropy quantile of the gate (0.8: the top 20 % of each response).
      Q: float
      /// per response (the authors' code) or over the batch.
      BatchGate: bool }

/// The paper's defaults for math: K 3, α 0.01, λ 1.1, q 0.8, per-response τ.
let simkoDefaults = { Alpha = 0.01; K = 3; Lambda = 1.1; Q = 0.8; BatchGate = false }

let simko : MethodDef<SimkoSettings> =
    { Name = "simko"; Label = "SimKO"; Doc = "top-K smoothing of positive, top-1 push of negative forking tokens (Peng et al. 2025)"
      Defaults = simkoDefaults; CommonDefaults = commonDefaults
      Settings =
        [ number "alpha" "top-K smoothing weight α" "SimKO paper 0.01; logic 0.005" (fun s -> s.Alpha) (fun x s -> { s with Alpha = x })
          integer "k" "candidates K of the smoothing" "SimKO paper 3" (fun s -> s.K) (fun x s -> { s with K = x })
          number "lambda" "push λ on the top-1 token of wrong responses" "SimKO paper 1.1; 1.05 for Qwen2.5-7B and logic" (fun s -> s.Lambda) (fun x s -> { s with Lambda = x })
          number "q" "entropy quantile of the gate (0.8: the top 20 %; 0: every token)" "SimKO paper 0.8" (fun s -> s.Q) (fun x s -> { s with Q = x })
          choice "gate" "response (the authors' per-response threshold) or batch" "the authors' code: response" id [ "response"; "batch" ]
              (fun s -> if s.BatchGate then "batch" else "response") (fun v s -> { s with BatchGate = (v = "batch") }) ]
      Validate = noChecks
      Objective = fun c s ->
        { grpoLike c (GroupNormalised true) with
            Gate = (if s.BatchGate then BatchQuantile s.Q else ResponseQuantile s.Q)
            Shaping = Shaping.Simko { Alpha = s.Alpha; K = s.K; Lambda = s.Lambda } } }

/// PSR: positive samples only (Zhu et al.).
let psr : MethodDef<NoSettings> =
    { grpo with Name = "psr"; Label = "PSR"; Doc = "policy gradient on correct responses only (Zhu et al. 2025)"; Objective = fun c _ -> grpoLike c PositiveOnly }

/// NSR: negative samples only (Zhu et al.).
let nsr : MethodDef<NoSettings> =
    { grpo with Name = "nsr"; Label = "NSR"; Doc = "policy gradient on wrong responses only (Zhu et al. 2025)"; Objective = fun c _ -> grpoLike c NegativeOnly }

/// W-REINFORCE (Zhu et al.): A = +λ_w correct, −1 incorrect.
type WReinforceSettings = { LambdaW: float }

let wReinforce : MethodDef<WReinforceSettings> =
    { Name = "w-reinforce"; Label = "W-REINFORCE"; Doc = "A = +λ_w for correct, −1 for wrong responses (Zhu et al. 2025)"
      Defaults = { LambdaW = 0.1 }; CommonDefaults = commonDefaults
      Settings = [ number "lambda_w" "weight of correct responses" "Zhu et al. 0.1" (fun s -> s.LambdaW) (fun x _ -> { LambdaW = x }) ]
      Validate = noChecks
      Objective = fun c s -> grpoLike c (WeightedReinforce s.LambdaW) }

/// KL-Cov (Cui et al.).
let klCov : MethodDef<KlCovSettings> =
    { Name = "kl-cov"; Label = "KL-Cov"; Doc = "KL penalty on the highest-covariance tokens (Cui et al. 2025)"
      Defaults = { Ratio = 2e-3; Coef = 1.0 }; CommonDefaults = commonDefaults
      Settings =
        [ number "ratio" "fraction of tokens penalised" "Cui et al. 2e-3" (fun s -> s.Ratio) (fun x s -> { s with Ratio = x })
          number "coef" "KL coefficient of penalised tokens" "Cui et al. 1.0" (fun s -> s.Coef) (fun x s -> { s with Coef = x }) ]
      Validate = noChecks
      Objective = fun c s -> { grpoLike c (GroupNormalised true) with KlCov = Some s } }

/// Entropy-Adv (Cheng et al.).
let entropyAdv : MethodDef<EntropyAdvSettings> =
    { Name = "entropy-adv"; Label = "Entropy-Adv"; Doc = "an entropy bonus on the advantage, capped (Cheng et al. 2025)"
      Defaults = { Scale = 0.4; Kappa = 2.0 }; CommonDefaults = commonDefaults
      Settings =
        [ number "a" "entropy bonus scale α" "Cheng et al. 0.4" (fun s -> s.Scale) (fun x s -> { s with Scale = x })
          number "kappa" "bonus cap κ" "Cheng et al. 2.0" (fun s -> s.Kappa) (fun x s -> { s with Kappa = x }) ]
      Validate = noChecks
      Objective = fun c s -> { grpoLike c (GroupNormalised true) with EntropyBonus = Some s } }

/// Forking tokens (Wang et al.): policy gradient on the top ρ = 20 % entropy tokens of the batch.
type ForkingSettings = { Q: float }

let forking : MethodDef<ForkingSettings> =
    { Name = "forking"; Label = "Forking"; Doc = "policy gradient on the highest-entropy tokens of the batch only (Wang et al. 2025)"
      Defaults = { Q = 0.8 }; CommonDefaults = commonDefaults
      Settings = [ number "q" "entropy quantile over the batch (0.8: the top ρ = 20 %)" "Wang et al. 0.8" (fun s -> s.Q) (fun x _ -> { Q = x }) ]
      Validate = noChecks
      Objective = fun c s -> { grpoLike c (GroupNormalised true) with Gate = BatchQuantile s.Q; Selection = OnlyGated } }

/// Pass@k training (Chen et al.): the pass@k objective's advantages.
type PassKSettings = { K: int }

let passK : MethodDef<PassKSettings> =
    { Name = "passk"; Label = "P@k T."; Doc = "advantages of the pass@k objective (Chen et al. 2025)"
      Defaults = { K = 4 }; CommonDefaults = commonDefaults
      Settings = [ integer "k" "k of the pass@k objective" "Chen et al. 4" (fun s -> s.K) (fun x _ -> { K = x }) ]
      Validate = noChecks
      Objective = fun c s -> grpoLike c (PassAtKTraining s.K) }

/// Dr. GRPO: no std division, seq-mean-token-sum-norm with a constant max length.
type DrGrpoSettings = { MaxLength: float }

let drGrpo : MethodDef<DrGrpoSettings> =
    { Name = "dr-grpo"; Label = "Dr. GRPO"; Doc = "no std division, a constant length normaliser (Liu et al. 2025)"
      Defaults = { MaxLength = 1024.0 }; CommonDefaults = { commonDefaults with Aggregation = SeqMeanTokenSumNorm 1024.0 }
      Settings = [ number "max_length" "constant length of seq-mean-token-sum-norm" "Liu et al. 1024" (fun s -> s.MaxLength) (fun x _ -> { MaxLength = x }) ]
      Validate = noChecks
      Objective = fun c s -> { grpoLike c (GroupNormalised false) with Aggregation = SeqMeanTokenSumNorm s.MaxLength } }

/// The one list of methods, each with its paper defaults: add a method here.
let all : Method list =
    [ define grpo; define simko; define psr; define nsr; define wReinforce; define klCov; define entropyAdv
      define forking; define passK; define drGrpo ]

/// The name of a method in configs and on the command line.
let name (m: Method) = m.Name

/// The name of a method in report tables and plots.
let displayName (m: Method) = m.Label

/// The common settings of a method.
let common (m: Method) = m.Common

/// The composition a method stands for.
let objective (m: Method) : Objective = m.Ops.Objective m

/// Every setting of a method, its own first, then the common ones.
let settingsOf (m: Method) : Setting<Method> list =
    m.Ops.OwnSettings @ (commonSettings |> Settings.lift (fun (m: Method) -> m.Common) (fun c m -> { m with Common = c }))

/// The method of that name in a list, with its defaults; an unknown name lists the valid ones.
let byNameIn (methods: Method list) (n: string) : Result<Method, string> =
    match methods |> List.tryFind (fun m -> m.Name = n) with
    | Some m -> Ok m
    | None -> Error(sprintf "unknown method '%s'; valid: %s" n (methods |> List.map _.Name |> String.concat ", "))

/// The method of that name with its paper defaults; an unknown name lists the valid ones.
let byName (n: string) : Result<Method, string> = byNameIn all n

let names = all |> List.map name

/// Every bad field of a method for a group size, at once (empty = valid).
let validate (groupSize: int) (m: Method) : string list =
    m.Ops.Validate m @ Objective.validate groupSize (objective m)
