/// Method settings by name (`--set method.alpha=0.05`, `"method_settings": {"alpha": 0.05}` in a
/// config file, `"settings"` in a `loss` batch): the one table that turns a setting's name and text
/// into a typed change of a SimKO.Math method value. Every setting says which methods it applies to;
/// a value of the wrong kind is reported as such, naming the setting and the method.
module SimKO.Cli.MethodSettings

open System
open System.Globalization
open SimKO.Math
open SimKO.Math.Methods

/// One setting of a method: its name, what it is, its value as text, and how a text sets it.
type Setting =
    { Name: string
      Doc: string
      Show: Method -> string
      Set: string -> Method -> Result<Method, string> }

let private inv (x: float) = x.ToString("R", CultureInfo.InvariantCulture)

let private number (setting: string) (m: Method) (text: string) =
    match Double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture) with
    | true, v when Double.IsFinite v -> Ok v
    | _ -> Error(sprintf "setting '%s' of method '%s': '%s' is not a number" setting (name m) text)

let private integer (setting: string) (m: Method) (text: string) =
    match Double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture) with
    | true, v when Double.IsFinite v && v = Math.Round v && abs v < 1e9 -> Ok(int v)
    | true, v when Double.IsFinite v -> Error(sprintf "setting '%s' of method '%s': %s is not an integer" setting (name m) text)
    | _ -> Error(sprintf "setting '%s' of method '%s': '%s' is not a number" setting (name m) text)

let private oneOf (setting: string) (m: Method) (options: (string * 'T) list) (text: string) =
    match List.tryFind (fun (n, _) -> n = text) options with
    | Some (_, v) -> Ok v
    | None -> Error(sprintf "setting '%s' of method '%s': '%s' is not one of %s" setting (name m) text (options |> List.map fst |> String.concat ", "))

/// The method with its common settings changed.
let mapCommon (f: CommonSettings -> CommonSettings) (m: Method) : Method =
    match m with
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

let private kinds = [ Aggregation.TokenMean; Aggregation.SeqMeanTokenMean; Aggregation.SeqMeanTokenSumNorm 1024.0 ]
let private estimators = [ KlPenalty.K1; KlPenalty.K2; KlPenalty.K3 ]

/// Settings every method has.
let private common : Setting list =
    let num n doc (get: CommonSettings -> float) (set: float -> CommonSettings -> CommonSettings) =
        { Name = n; Doc = doc; Show = (fun m -> inv (get (common m)))
          Set = fun v m -> number n m v |> Result.map (fun x -> mapCommon (set x) m) }
    [ num "clip_low" "PPO clip ε_low (0.2)" (fun c -> c.Clip.Low) (fun x c -> { c with Clip = { c.Clip with Low = x } })
      num "clip_high" "PPO clip ε_high (0.2; DAPO's clip-higher 0.28)" (fun c -> c.Clip.High) (fun x c -> { c with Clip = { c.Clip with High = x } })
      { Name = "dual_clip"; Doc = "dual-clip bound c for negative advantages (off)"
        Show = (fun m -> match (common m).Clip.Dual with Some c -> inv c | None -> "off")
        Set = fun v m ->
            if v = "off" || v = "" then Ok(mapCommon (fun c -> { c with Clip = { c.Clip with Dual = None } }) m)
            else number "dual_clip" m v |> Result.map (fun x -> mapCommon (fun c -> { c with Clip = { c.Clip with Dual = Some x } }) m) }
      num "kl_beta" "KL-to-reference weight β (0: off, as in the SimKO runs)" (fun c -> c.Kl.Beta) (fun x c -> { c with Kl = { c.Kl with Beta = x } })
      { Name = "kl_estimator"; Doc = "k1, k2 or k3"
        Show = (fun m -> KlPenalty.name (common m).Kl.Estimator)
        Set = fun v m ->
            oneOf "kl_estimator" m (estimators |> List.map (fun e -> KlPenalty.name e, e)) v
            |> Result.map (fun e -> mapCommon (fun c -> { c with Kl = { c.Kl with Estimator = e } }) m) }
      { Name = "aggregation"; Doc = "token-mean, seq-mean-token-mean or seq-mean-token-sum-norm"
        Show = (fun m -> Aggregation.name (common m).Aggregation)
        Set = fun v m ->
            let maxLen = match m with DrGrpo d -> d.MaxLength | _ -> 1024.0
            let options = kinds |> List.map (fun a -> Aggregation.name a, (match a with Aggregation.SeqMeanTokenSumNorm _ -> Aggregation.SeqMeanTokenSumNorm maxLen | a -> a))
            oneOf "aggregation" m options v |> Result.map (fun a -> mapCommon (fun c -> { c with Aggregation = a }) m) } ]

/// Settings of one method only: (name, doc, show, set on that method's record).
let private own (m: Method) : Setting list =
    let numOf n doc (show: Method -> float) (set: float -> Method -> Method) =
        { Name = n; Doc = doc; Show = (show >> inv); Set = fun v m -> number n m v |> Result.map (fun x -> set x m) }
    let intOf n doc (show: Method -> int) (set: int -> Method -> Method) =
        { Name = n; Doc = doc; Show = (show >> string); Set = fun v m -> integer n m v |> Result.map (fun x -> set x m) }
    match m with
    | Simko _ ->
        let get (m: Method) = match m with Simko s -> s | _ -> simkoDefaults
        let put (f: SimkoSettings -> SimkoSettings) (m: Method) = match m with Simko s -> Simko(f s) | other -> other
        [ numOf "alpha" "top-K smoothing weight α (paper 0.01; logic 0.005)" (fun m -> (get m).Alpha) (fun x -> put (fun s -> { s with Alpha = x }))
          intOf "k" "candidates K of the smoothing (3)" (fun m -> (get m).K) (fun x -> put (fun s -> { s with K = x }))
          numOf "lambda" "push λ on the top-1 token of wrong responses (1.1; 1.05 for Qwen2.5-7B and logic)" (fun m -> (get m).Lambda) (fun x -> put (fun s -> { s with Lambda = x }))
          numOf "q" "entropy quantile of the gate (0.8: the top 20 %; 0: every token)" (fun m -> (get m).Q) (fun x -> put (fun s -> { s with Q = x }))
          { Name = "gate"; Doc = "response (the authors' per-response threshold) or batch"
            Show = (fun m -> if (get m).BatchGate then "batch" else "response")
            Set = fun v m -> oneOf "gate" m [ "response", false; "batch", true ] v |> Result.map (fun b -> put (fun s -> { s with BatchGate = b }) m) } ]
    | Forking _ ->
        [ numOf "q" "entropy quantile over the batch (0.8: the top ρ = 20 %)" (fun m -> match m with Forking s -> s.Q | _ -> nan)
              (fun x m -> match m with Forking s -> Forking { s with Q = x } | other -> other) ]
    | WReinforce _ ->
        [ numOf "lambda_w" "weight of correct responses (0.1)" (fun m -> match m with WReinforce s -> s.LambdaW | _ -> nan)
              (fun x m -> match m with WReinforce s -> WReinforce { s with LambdaW = x } | other -> other) ]
    | KlCov _ ->
        [ numOf "ratio" "fraction of tokens penalised (2e-3)" (fun m -> match m with KlCov s -> s.KlCov.Ratio | _ -> nan)
              (fun x m -> match m with KlCov s -> KlCov { s with KlCov = { s.KlCov with Ratio = x } } | other -> other)
          numOf "coef" "KL coefficient of penalised tokens (1.0)" (fun m -> match m with KlCov s -> s.KlCov.Coef | _ -> nan)
              (fun x m -> match m with KlCov s -> KlCov { s with KlCov = { s.KlCov with Coef = x } } | other -> other) ]
    | EntropyAdv _ ->
        [ numOf "a" "entropy bonus scale α (0.4)" (fun m -> match m with EntropyAdv s -> s.EntropyAdv.Scale | _ -> nan)
              (fun x m -> match m with EntropyAdv s -> EntropyAdv { s with EntropyAdv = { s.EntropyAdv with Scale = x } } | other -> other)
          numOf "kappa" "bonus cap κ (2.0)" (fun m -> match m with EntropyAdv s -> s.EntropyAdv.Kappa | _ -> nan)
              (fun x m -> match m with EntropyAdv s -> EntropyAdv { s with EntropyAdv = { s.EntropyAdv with Kappa = x } } | other -> other) ]
    | PassK _ ->
        [ intOf "k" "k of the pass@k objective (4)" (fun m -> match m with PassK s -> s.K | _ -> 0)
              (fun x m -> match m with PassK s -> PassK { s with K = x } | other -> other) ]
    | DrGrpo _ ->
        [ numOf "max_length" "constant length of seq-mean-token-sum-norm (1024)" (fun m -> match m with DrGrpo s -> s.MaxLength | _ -> nan)
              (fun x m ->
                  match m with
                  | DrGrpo s -> DrGrpo { s with MaxLength = x; Common = { s.Common with Aggregation = Aggregation.SeqMeanTokenSumNorm x } }
                  | other -> other) ]
    | Grpo _ | Psr _ | Nsr _ -> []

/// Every setting of a method, its own first.
let settingsOf (m: Method) : Setting list = own m @ common

/// Set one setting by name from its text.
let set (key: string) (value: string) (m: Method) : Result<Method, string> =
    match settingsOf m |> List.tryFind (fun s -> s.Name = key) with
    | Some s -> s.Set (value.Trim()) m
    | None ->
        Error(sprintf "setting '%s' does not apply to method '%s'; its settings: %s" key (name m) (settingsOf m |> List.map _.Name |> String.concat ", "))

/// Apply (name, text) pairs in order; every problem at once.
let apply (pairs: (string * string) list) (m: Method) : Result<Method, string list> =
    let folder (m, errors) (k, v) =
        match set k v m with
        | Ok m -> m, errors
        | Error e -> m, errors @ [ e ]
    match List.fold folder (m, []) pairs with
    | m, [] -> Ok m
    | _, errors -> Error errors

/// Every setting of a method with its value, as text (written into configs and reports).
let values (m: Method) : (string * string) list = settingsOf m |> List.map (fun s -> s.Name, s.Show m)

/// The method's own settings with their values (those not every method shares).
let ownValues (m: Method) : (string * string) list = own m |> List.map (fun s -> s.Name, s.Show m)
