/// `simko grade`: grade predictions against reference answers (JSON lines in, JSON lines out).
module SimKO.Cli.GradeArgs

open Argu

type GradeArgs =
    | [<AltCommandLine("-i")>] Input of path: string
    | [<AltCommandLine("-o")>] Output of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Input _ -> "JSONL file of {\"prediction\", \"reference\"} objects (default: standard input)."
            | Output _ -> "where to write each line back with \"extracted\" and \"correct\" added (default: standard output)."

/// What the host reads.
type GradeOptions = { Input: string option; Output: string option }

let toOptions (r: ParseResults<GradeArgs>) =
    { Input = r.TryGetResult Input; Output = r.TryGetResult Output }
