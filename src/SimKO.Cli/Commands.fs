/// The command line of `simko`: one sub-command per job. Argu parses; the host receives plain
/// option records (`Command`), so the C# side never touches Argu's quotation-based API.
module SimKO.Cli.Commands

open Argu

type SimkoArgs =
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Loss of ParseResults<LossArgs.LossArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Info
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Tokenize of ParseResults<TokenizeArgs.TokenizeArgs>
    | [<SubCommand; CliPrefix(CliPrefix.None)>] Bench_Rollout of ParseResults<BenchRolloutArgs.BenchRolloutArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Loss _ -> "compute a method's loss, its gradient w.r.t. the logits and its metrics from a JSON batch."
            | Info -> "print the device, dtype and library versions this build runs with."
            | Tokenize _ -> "encode JSONL {\"text\"} lines with a model folder's tokenizer into {\"text\", \"ids\"} lines."
            | Bench_Rollout _ -> "measure sampling tokens/s with and without the KV cache, and training-step tokens/s."

type Command =
    | Loss of LossArgs.LossOptions
    | Info
    | Tokenize of TokenizeArgs.TokenizeOptions
    | BenchRollout of BenchRolloutArgs.BenchRolloutOptions

/// Outcome of parsing: a command, or text to print (help or a usage error) with an exit code.
type Parsed =
    | Run of Command
    | Exit of message: string * code: int

let parser = ArgumentParser.Create<SimkoArgs>(programName = "simko")

let parse (argv: string[]) : Parsed =
    try
        let r = parser.ParseCommandLine(argv, raiseOnUsage = true)
        match r.TryGetSubCommand() with
        | Some (SimkoArgs.Loss l) -> Run(Loss(LossArgs.toOptions l))
        | Some SimkoArgs.Info -> Run Info
        | Some (SimkoArgs.Tokenize t) -> Run(Tokenize(TokenizeArgs.toOptions t))
        | Some (SimkoArgs.Bench_Rollout b) -> Run(BenchRollout(BenchRolloutArgs.toOptions b))
        | None -> Exit(parser.PrintUsage(), 2)
    with :? ArguParseException as e ->
        let code = if e.ErrorCode = ErrorCode.HelpText then 0 else 2
        Exit(e.Message, code)
