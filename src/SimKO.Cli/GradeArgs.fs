/// `simko grade`: grade predictions against references (JSONL in, JSONL out) with the math or the BBH
/// verifier; `--bench` measures grading speed instead.
module SimKO.Cli.GradeArgs

open Argu

/// Which verifier grades the lines.
type Grader =
    /// Mathematical equivalence (MATH, AIME, AMC, Minerva, OlympiadBench, GSM8K answers).
    | Math
    /// BIG-Bench Hard exact match.
    | Bbh

type GradeArgs =
    | [<AltCommandLine("-i")>] Input of path: string
    | [<AltCommandLine("-o")>] Output of path: string
    | Grader of Grader
    | Bench
    | Seconds of float
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Input _ -> "JSONL lines {\"prediction\", \"reference\"} (default: standard input); with --bench, pairs to time instead of the built-in corpus."
            | Output _ -> "where to write each line with \"extracted\" and \"correct\" added (default: standard output)."
            | Grader _ -> "math (default) or bbh."
            | Bench -> "measure gradings per second on one thread instead of grading."
            | Seconds _ -> "how long --bench measures (default 3)."

/// What the host reads.
type GradeOptions =
    { Input: string option
      Output: string option
      Grader: Grader
      Bench: bool
      /// Duration of the benchmark in seconds.
      Seconds: float }

let toOptions (r: ParseResults<GradeArgs>) =
    { Input = r.TryGetResult Input
      Output = r.TryGetResult Output
      Grader = r.GetResult(Grader, defaultValue = Math)
      Bench = r.Contains Bench
      Seconds = r.GetResult(Seconds, defaultValue = 3.0) }
