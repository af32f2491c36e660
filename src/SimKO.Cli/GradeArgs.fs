/// `simko grade`: grade predictions against reference answers (JSON lines in, JSON lines out).
module SimKO.Cli.GradeArgs

open Argu

/// How `grade` compares a prediction with its reference. A new task is one case here, one line in
/// `parseTask` and one in the host's `GradeCommand.GraderFor`.
type GradeTask =
    /// the math verifier: the last \boxed{} (or "the answer is") equivalent to the reference
    | Math
    /// BIG-Bench Hard's scoring (an answer naming several options is wrong); `Some task` (from
    /// `bbh/<task>`) uses that task's answer format, checked against the 27 tasks by the host
    | Bbh of task: string option
    /// HumanEval: `{"task_id", "completion"}` lines run with their unit tests in the sandbox
    | HumanEval

/// The names `--task` takes, for help and errors.
let taskNames = "math (default), bbh, bbh/<task>, humaneval"

/// `math`, `bbh` or `bbh/<task>`; any other name is an error that lists the valid ones.
let parseTask (name: string) : Result<GradeTask, string> =
    match name with
    | "math" -> Ok Math
    | "bbh" -> Ok(Bbh None)
    | "humaneval" -> Ok HumanEval
    | n when n.StartsWith "bbh/" && n.Length > 4 -> Ok(Bbh(Some n.[4..]))
    | n -> Error(sprintf "unknown grading task '%s'; valid: %s" n taskNames)

type GradeArgs =
    | [<AltCommandLine("-t")>] Task of name: string
    | [<AltCommandLine("-i")>] Input of path: string
    | [<AltCommandLine("-o")>] Output of path: string
    | Data of path: string
    | Unsafe_No_Sandbox
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Task _ -> "how to grade: math (default; the math verifier), bbh (BIG-Bench Hard's scoring; hedged answers naming several options are wrong), bbh/<task> (that task's answer format) or humaneval ({task_id, completion} lines, run with their unit tests in the sandbox: adds passed and result)."
            | Data _ -> "humaneval: the problems file in HumanEval's format (default ../shared/datasets/humaneval/HumanEval.jsonl.gz)."
            | Unsafe_No_Sandbox -> "humaneval: run the code WITHOUT isolation (limits and timeouts only); only where no sandbox can start."
            | Input _ -> "JSONL file of {\"prediction\", \"reference\"} objects (default: standard input)."
            | Output _ -> "where to write each line back with \"extracted\" and \"correct\" added (default: standard output)."

/// What the host reads.
type GradeOptions = { Task: GradeTask; Input: string option; Output: string option; Data: string option; UnsafeNoSandbox: bool }

let toOptions (r: ParseResults<GradeArgs>) =
    // Argu turns the parser's exception into a usage error (exit code 2) that carries the message
    let task = r.TryPostProcessResult(Task, fun name -> match parseTask name with Ok t -> t | Error message -> failwith message)
    { Task = defaultArg task Math; Input = r.TryGetResult Input; Output = r.TryGetResult Output
      Data = r.TryGetResult Data; UnsafeNoSandbox = r.Contains Unsafe_No_Sandbox }
