/// The command line of `simko`: one sub-command per job. Argu parses; the host receives plain
/// option records (`Command`), so the C# side never touches Argu's quotation-based API.
module SimKO.Cli.Commands

open Argu

type SimkoArgs =
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Loss of ParseResults<LossArgs.LossArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Train of ParseResults<TrainArgs.TrainArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Eval of ParseResults<EvalArgs.EvalArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Reproduce of ParseResults<ReproduceArgs.ReproduceArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Bench of ParseResults<BenchArgs.BenchArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Grade of ParseResults<GradeArgs.GradeArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Tokenize of ParseResults<TokenizeArgs.TokenizeArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Serve of ParseResults<ServeArgs.ServeArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Score of ParseResults<ScoreArgs.ScoreArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Plan of ParseResults<PlanArgs.PlanArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Info
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Loss _ -> "compute a method's loss, its gradient w.r.t. the logits and its metrics from a JSON batch."
            | Train _ -> "train a policy with one method (grpo, simko, …) from a JSON config and --set overrides."
            | Eval _ -> "pass@K, mean@n and maj@n of a model; a temperature sweep by option."
            | Reproduce _ -> "the paper's experiment at CPU scale: base model, GRPO and SimKO from it, pass@K table, Λ and entropy plots."
            | Bench _ -> "measure where time and memory go: matmul peak, update step MFU, SimKO vs GRPO, rollout, grading."
            | Grade _ -> "grade answers (math by default; --task bbh or bbh/<task>): JSONL {prediction, reference} in, each line back with extracted and correct."
            | Tokenize _ -> "encode JSONL lines {text} with a tokenizer folder into {text, ids} lines."
            | Serve _ -> "serve a model over the OpenAI-compatible HTTP subset of vLLM/SGLang, with continuous batching."
            | Score _ -> "per-token log-probs of JSONL sequences {ids} or {text} under a model."
            | Plan _ -> "a run's GPU memory before any GPU is touched: weights, master weights, gradients, optimizer, activations, logits, KV cache; fits or what to change."
            | Info -> "print the device, dtype and library versions this build runs with."

type Command =
    | Loss of LossArgs.LossOptions
    | Bench of BenchArgs.BenchOptions
    | Reproduce of RunSpec.ReproduceSpec
    /// a training run and whether to resume it from its newest intact checkpoint.
    | Train of RunSpec.TrainSpec * resume: bool
    | Eval of RunSpec.EvalSpec
    | Grade of GradeArgs.GradeOptions
    | Tokenize of TokenizeArgs.TokenizeOptions
    | Serve of ServeArgs.ServeOptions
    | Score of ScoreArgs.ScoreOptions
    | Plan of PlanArgs.PlanOptions
    | Info

/// Outcome of parsing: a command, or text to print (help or a usage error) with an exit code.
type Parsed =
    | Run of Command
    | Exit of message: string * code: int

let parser = ArgumentParser.Create<SimkoArgs>(programName = "simko")

/// Every problem of a command's arguments, one per line, and where to read more.
let private problemsText (command: string) (problems: string list) =
    String.concat "\n" ((problems |> List.map (sprintf "error: %s")) @ [ sprintf "(see: simko %s --help)" command ])

/// The command a checked spec makes, or every problem of its arguments (exit code 2).
let private runIfValid (command: string) (result: Result<'T, string list>) (make: 'T -> Command) : Parsed =
    match result with
    | Ok x -> Run(make x)
    | Error problems -> Exit(problemsText command problems, 2)

/// Parse a command line against a list of methods (`Methods.all` in the shipped program).
let parseWith (methods: SimKO.Math.Methods.Method list) (argv: string[]) : Parsed =
    try
        let r = parser.ParseCommandLine(argv, raiseOnUsage = true)
        match r.TryGetSubCommand() with
        | Some (SimkoArgs.Loss l) -> Run(Loss(LossArgs.toOptions l))
        | Some (SimkoArgs.Train t) ->
            let o = TrainArgs.toOptions t
            runIfValid "train" (TrainArgs.resolveWith methods o) (fun spec -> Train(spec, o.Resume))
        | Some (SimkoArgs.Eval e) -> runIfValid "eval" (EvalArgs.toSpec e) Eval
        | Some (SimkoArgs.Reproduce r) -> runIfValid "reproduce" (ReproduceArgs.toSpecWith methods r) Reproduce
        | Some (SimkoArgs.Bench b) -> Run(Bench(BenchArgs.toOptions b))
        | Some (SimkoArgs.Grade g) -> Run(Grade(GradeArgs.toOptions g))
        | Some (SimkoArgs.Tokenize t) -> Run(Tokenize(TokenizeArgs.toOptions t))
        | Some (SimkoArgs.Serve s) -> runIfValid "serve" (ServeArgs.toOptions s) Serve
        | Some (SimkoArgs.Score s) -> runIfValid "score" (ScoreArgs.toOptions s) Score
        | Some (SimkoArgs.Plan p) -> runIfValid "plan" (PlanArgs.toOptions p) Plan
        | Some SimkoArgs.Info -> Run Info
        | None -> Exit(parser.PrintUsage(), 2)
    with :? ArguParseException as e ->
        let code = if e.ErrorCode = ErrorCode.HelpText then 0 else 2
        // `train --help` also lists every setting with its default and source
        // (and `reproduce --help` every method --methods accepts)
        let extra =
            if code <> 0 || argv.Length = 0 then ""
            elif argv.[0] = "train" then "\n" + TrainConfig.helpTextWith methods
            elif argv.[0] = "reproduce" then
                "\n" + String.concat "\n" ("Methods (--methods):" :: [ for m in methods -> sprintf "  %-14s %-12s %s" m.Name m.Label m.Doc ])
            else ""
        Exit(e.Message + extra, code)

/// `parseWith` the shipped methods (`Methods.all`).
let parse (argv: string[]) : Parsed = parseWith SimKO.Math.Methods.all argv
