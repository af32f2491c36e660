/// `simko reproduce`: the paper's experiment at CPU scale (the README's main command), its
/// ablation (Table 3) and setting sweeps (Figure 7).
module SimKO.Cli.ReproduceArgs

open System
open System.Globalization
open Argu
open SimKO.Math
open SimKO.Cli.RunSpec

/// The program task's defaults (docs/results/program): every reward and every evaluation sample is a
/// sandboxed run, so it trains fewer RL steps and evaluates fewer samples than Countdown.
[<Literal>]
let ProgramSteps = 30
[<Literal>]
let ProgramEvalSamples = 16
/// The program task's warm-start: reading a quadratic off f(0), f(1), f(2) takes the tiny model longer than
/// Countdown (held-out base pass@1 9.9 % after 1000 steps, 33.7 % after 2000; docs/results/program).
[<Literal>]
let ProgramBaseSteps = 2000

type ReproduceArgs =
    | Quick
    | [<AltCommandLine("-o")>] Out of dir: string
    | Methods of names: string list
    | Ablation
    | Sweep of assignment: string
    | Seeds of count: int
    | Steps of count: int
    | Base_Steps of count: int
    | Eval_Samples of n: int
    | Eval_Problems of count: int
    | Eval_Temperature of t: float
    | Simko_Alpha of alpha: float
    | Simko_Lambda of lambda: float
    | Simko_K of k: int
    | Simko_Q of q: float
    | Task of name: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Quick -> "a 1-minute version for CI: smaller base, 24 RL steps, one seed, fewer evaluation samples."
            | Out _ -> "report folder (default runs/reproduce)."
            | Methods _ -> sprintf "methods to train from the same base (default grpo simko; any of %s)." (String.concat ", " Methods.names)
            | Ablation -> "Table 3: SimKO, then SimKO with one part off at a time (no top-K smoothing: α = 0; no top-1 push: λ = 1; no entropy gate: every token), and GRPO."
            | Sweep _ -> "Figure 7: one setting over values, e.g. --sweep method.alpha=0,0.05,0.1 (a method setting: each --methods entry that has it is swept, each that lacks it, e.g. grpo, trains once as the baseline every value is paired with by seed) or --sweep lr=1e-4,3e-4 (every method swept)."
            | Seeds _ -> "seeds per method (default 3; the base model is shared)."
            | Steps _ -> sprintf "RL steps per run (default 300, REPRODUCTION-NOTES; %d for --task program, whose every reward is a sandboxed run)." ProgramSteps
            | Base_Steps _ -> sprintf "supervised warm-start steps of the base model (default 1000, REPRODUCTION-NOTES; %d for --task program)." ProgramBaseSteps
            | Eval_Samples _ -> sprintf "samples per test problem n (default 64; %d for --task program); pass@K for K = 1, 2, 4, … n." ProgramEvalSamples
            | Eval_Problems _ -> "test problems evaluated (default: all 200 held-out ones)."
            | Eval_Temperature _ -> "evaluation temperature (default 0.6 with top-p 0.95, the paper's protocol)."
            | Simko_Alpha _ -> "SimKO α (default 0.1: the CPU-scale setting of REPRODUCTION-NOTES; the paper's LLM setting is 0.01)."
            | Simko_Lambda _ -> "SimKO λ (default 1.5: CPU-scale; paper 1.1)."
            | Simko_K _ -> "SimKO K (default 3, paper)."
            | Simko_Q _ -> "SimKO entropy quantile q (default 0.8, paper)."
            | Task _ -> sprintf "built-in task: %s (default countdown; order is the logic task of Table 2)." (builtins |> List.map builtinName |> String.concat ", ")

let private variant (m: Methods.Method) = { Key = Methods.name m; Label = Methods.displayName m; Method = m; Swept = None; Change = id }

/// The typed spec of the arguments, or every problem at once.
let toSpecWith (known: Methods.Method list) (r: ParseResults<ReproduceArgs>) : Result<ReproduceSpec, string list> =
    let quick = r.Contains Quick
    let simkoSettings =
        { Methods.simkoDefaults with
            Alpha = r.GetResult(Simko_Alpha, defaultValue = 0.1)
            Lambda = r.GetResult(Simko_Lambda, defaultValue = 1.5)
            K = r.GetResult(Simko_K, defaultValue = 3)
            Q = r.GetResult(Simko_Q, defaultValue = 0.8) }
    let simko = Methods.make Methods.simko simkoSettings
    let methodOf name =
        match Methods.byNameIn known name with
        | Ok m when m.Name = Methods.simko.Name -> Ok simko
        | other -> other
    let errors = ResizeArray<string>()
    let task =
        let name = r.GetResult(Task, defaultValue = "countdown")
        match tryBuiltin name with
        | Some t -> t
        | None ->
            errors.Add(sprintf "--task: '%s' is not a built-in task; valid: %s" name (builtins |> List.map builtinName |> String.concat ", "))
            Countdown
    let methods =
        r.GetResult(Methods, defaultValue = [ "grpo"; "simko" ])
        |> List.choose (fun n ->
            match methodOf n with
            | Ok m -> Some m
            | Error e -> errors.Add(sprintf "--methods: %s" e); None)
    let study, variants =
        match r.Contains Ablation, r.TryGetResult Sweep with
        | true, Some _ ->
            errors.Add "--ablation and --sweep are separate studies; give one"
            Study.Comparison, []
        | true, None ->
            let s = simkoSettings
            Study.Ablation,
            [ { variant simko with Label = "SimKO" }
              { Key = "simko-no-smoothing"; Label = "w/o top-K smoothing (α = 0)"; Method = Methods.make Methods.simko { s with Alpha = 0.0 }; Swept = None; Change = id }
              { Key = "simko-no-push"; Label = "w/o top-1 push (λ = 1)"; Method = Methods.make Methods.simko { s with Lambda = 1.0 }; Swept = None; Change = id }
              { Key = "simko-no-gate"; Label = "w/o entropy gate (all tokens)"; Method = Methods.make Methods.simko { s with Q = 0.0 }; Swept = None; Change = id }
              variant (Methods.define Methods.grpo) ]
        | false, Some assignment ->
            match assignment.IndexOf '=' with
            | i when i > 0 ->
                let key = assignment.Substring(0, i).Trim()
                let values = assignment.Substring(i + 1).Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries) |> List.ofArray
                if values.Length < 2 then errors.Add(sprintf "--sweep %s: give at least two values, comma-separated" assignment)
                let safe (v: string) = v.Replace('/', '_').Replace(' ', '_')
                // a method sweep leaves the methods without that setting (GRPO for α or q) as one
                // unswept baseline each: the report pairs every swept value with it, seed by seed
                let hasSetting (m: Methods.Method) =
                    not (key.StartsWith "method.") || MethodSettings.settingsOf m |> List.exists (fun s -> s.Name = key.Substring 7)
                if key.StartsWith "method." && not (methods |> List.exists hasSetting) then
                    errors.Add(sprintf "--sweep %s: no --methods entry has the setting '%s'" key (key.Substring 7))
                let vs =
                    [ for m in methods do
                      if not (hasSetting m) then yield variant m
                      else
                        for v in values do
                            let key', label = sprintf "%s-%s-%s" (Methods.name m) key (safe v), sprintf "%s %s = %s" (Methods.displayName m) key v
                            if key.StartsWith "method." then
                                let name = key.Substring 7
                                // the value parsed once, by the setting's kind; the variant holds the typed method
                                match MethodSettings.set name v m with
                                | Ok m' ->
                                    let typed = Settings.values (MethodSettings.settingsOf m') m' |> List.find (fun (n, _) -> n = name) |> snd
                                    yield { Key = sprintf "%s-%s-%s" (Methods.name m) name (safe v); Label = sprintf "%s %s = %s" (Methods.displayName m) name v
                                            Method = m'; Swept = Some(name, typed); Change = id }
                                | Error e -> errors.Add(sprintf "--sweep: %s" e)
                            else
                                match TrainConfig.fields |> List.tryFind (fun f -> f.Name = key) with
                                | Some f ->
                                    // parsed once into a typed value; the variant is a function TrainSpec -> TrainSpec
                                    match Settings.parse f.Kind v |> Result.mapError List.singleton
                                          |> Result.bind (fun value -> TrainConfig.withSetting f value TrainConfig.defaults |> Result.map (fun _ -> value)) with
                                    | Ok value ->
                                        let change spec =
                                            match TrainConfig.withSetting f value spec with
                                            | Ok s -> s
                                            | Error es -> failwithf "--sweep %s=%s: %s" key v (String.concat "; " es)
                                        yield { Key = key'; Label = label; Method = m; Swept = Some(key, value); Change = change }
                                    | Error es -> for e in es do errors.Add(sprintf "--sweep %s: %s" key e)
                                | None -> errors.Add(sprintf "--sweep: unknown setting '%s'; a training setting (see simko train --help) or method.<name>" key) ]
                Study.Sweep key, vs
            | _ ->
                errors.Add(sprintf "--sweep %s: expected name=v1,v2,…" assignment)
                Study.Comparison, []
        | false, None -> Study.Comparison, methods |> List.map variant
    for v in variants do
        for p in Methods.validate 8 v.Method do errors.Add(sprintf "%s: %s" v.Label p)
    // the program task grades every sample by running it in the sandbox: fewer RL steps and samples by default
    let program = (match task with Program -> true | _ -> false)
    let spec =
        { Task = task
          Study = study
          Variants = variants
          Quick = quick
          Out = r.GetResult(Out, defaultValue = "runs/reproduce")
          Seeds = r.GetResult(Seeds, defaultValue = (if quick then 1 else 3))
          Steps = r.GetResult(Steps, defaultValue = (if quick then 24 elif program then ProgramSteps else 300))
          BaseSteps = r.GetResult(Base_Steps, defaultValue = (if quick then 300 elif program then ProgramBaseSteps else 1000))
          EvalSamples = r.GetResult(Eval_Samples, defaultValue = (if quick then 16 elif program then ProgramEvalSamples else 64))
          EvalProblems = (match r.TryGetResult Eval_Problems with Some n -> Some n | None -> if quick then Some 64 else None)
          EvalTemperature = r.GetResult(Eval_Temperature, defaultValue = 0.6) }
    if spec.Seeds < 1 then errors.Add(sprintf "--seeds must be >= 1, got %d" spec.Seeds)
    if spec.Steps < 1 then errors.Add(sprintf "--steps must be >= 1, got %d" spec.Steps)
    if spec.BaseSteps < 1 then errors.Add(sprintf "--base-steps must be >= 1, got %d" spec.BaseSteps)
    if spec.EvalSamples < 1 then errors.Add(sprintf "--eval-samples must be >= 1, got %d" spec.EvalSamples)
    if variants.IsEmpty && errors.Count = 0 then errors.Add "nothing to train: give --methods"
    if errors.Count = 0 then Ok spec else Error(List.ofSeq errors)

/// `toSpecWith` the shipped methods (`Methods.all`).
let toSpec (r: ParseResults<ReproduceArgs>) = toSpecWith Methods.all r
