/// The `simko grade` command: `--task` parses into a case (math by default, bbh, bbh/<task>) and an
/// unknown name lists the valid ones; BBH grading adds "extracted" and "correct" the BBH way (hedges
/// wrong, emphasis ignored, a task's answer format where it matters); errors name the line and the
/// field; output is written atomically.
module SimKO.Tests.GradeCommandTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open SimKO.Cli
open SimKO.Cli.GradeArgs
open SimKO.Data.Math
open SimKO.Host.Commands

/// The options `simko grade <args>` parses to, or the message and exit code it stops with.
let private parse (args: string list) =
    match Commands.parse (Array.ofList ("grade" :: args)) with
    | Commands.Run(Commands.Command.Grade options) -> Ok options
    | Commands.Exit(message, code) -> Error(message, code)
    | other -> failtestf "not a grade command: %A" other

/// Every non-blank input line graded with the task's grader: (graded, correct) and the output objects.
let private gradeLines (task: GradeTask) (lines: string list) =
    use input = new StringReader(String.Join("\n", lines))
    use output = new StringWriter()
    let struct (graded, correct) = GradeCommand.Grade(input, output, GradeCommand.GraderFor task)
    let objects =
        output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries) |> Array.map (fun l -> JsonNode.Parse(l).AsObject())
    graded, correct, objects

let private inputError (task: GradeTask) (lines: string list) =
    try gradeLines task lines |> ignore; "no error"
    with :? SimKO.Host.Commands.InputException as e -> e.Message

/// A temp folder for one test, deleted after it.
let private inFolder (f: string -> unit) =
    let dir = Path.Combine(Path.GetTempPath(), "simko-grade-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    try f dir finally Directory.Delete(dir, true)

let tests =
    testList "grade command" [
        testCase "--task parses math (the default), bbh and bbh/<task>" <| fun () ->
            for args, expected in [ [], GradeTask.Math; [ "--task"; "math" ], GradeTask.Math; [ "--task"; "bbh" ], Bbh None
                                    [ "--task"; "bbh/snarks" ], Bbh(Some "snarks"); [ "-t"; "bbh/nope" ], Bbh(Some "nope") ] do
                match parse args with
                | Ok options -> Expect.equal options.Task expected (sprintf "%A" args)
                | Error(message, _) -> failtestf "%A: %s" args message
        testCase "an unknown --task is a usage error that lists the valid names" <| fun () ->
            for name in [ "HumanEval"; "BBH"; "bbh/"; "mathh" ] do
                match parse [ "--task"; name ] with
                | Ok options -> failtestf "'%s' parsed as %A" name options.Task
                | Error(message, code) ->
                    Expect.equal code 2 "exit code"
                    Expect.stringContains message (sprintf "unknown grading task '%s'" name) message
                    Expect.stringContains message "valid: math (default), bbh, bbh/<task>" message
        testCase "bbh adds extracted and correct and keeps the other fields: emphasis ignored, hedges wrong" <| fun () ->
            let graded, correct, out =
                gradeLines (Bbh None) [
                    """{"id": 1, "prediction": "So the answer is **(B)**.", "reference": "(B)"}"""
                    """{"id": 2, "prediction": "So the answer is (A) or (B).", "reference": "(B)"}"""
                    ""
                    """{"id": 3, "prediction": "*True*", "reference": "True"}"""
                    """{"id": 4, "prediction": "B and C", "reference": "(B)"}"""
                    """{"id": 5, "prediction": "no answer\non two lines", "reference": "True"}"""
                    """{"id": 6, "prediction": "\\boxed{-35}", "reference": -35}""" ]
            Expect.equal (graded, correct) (6, 3) "six lines graded, three correct"
            Expect.equal [ for o in out -> o["id"].GetValue<int>() ] [ 1; 2; 3; 4; 5; 6 ] "other fields kept, in order"
            Expect.equal [ for o in out -> o["correct"].GetValue<bool>() ] [ true; false; true; false; false; true ] "correct"
            Expect.equal (out.[0].["extracted"].GetValue<string>()) "**(B)**" "extracted as found"
            Expect.equal (out.[1].["extracted"].GetValue<string>()) "(A) or (B)" "the hedge is extracted, and wrong"
            Expect.isNull out.[4].["extracted"] "no answer: extracted is null"
        testCase "bbh/<task> uses the task's answer format: a bare-letter reference is the option in a multiple-choice task" <| fun () ->
            let line = """{"prediction": "The answer is (B).", "reference": "B"}"""
            let _, correctInTask, _ = gradeLines (Bbh(Some "snarks")) [ line ]
            let _, correctAnyTask, _ = gradeLines (Bbh None) [ line ]
            let _, correctYesNo, _ = gradeLines (Bbh(Some "navigate")) [ line ]
            Expect.equal (correctInTask, correctAnyTask, correctYesNo) (1, 0, 0) "only snarks (options) reads 'B' as (B)"
            let _, hedged, _ = gradeLines (Bbh(Some "snarks")) [ """{"prediction": "(A) and (B)", "reference": "B"}""" ]
            Expect.equal hedged 0 "a hedge is wrong in a task's format too"
        testCase "an unknown BBH task lists the 27 tasks; grade exits with 2 and writes nothing" <| fun () ->
            let message = try GradeCommand.GraderFor(Bbh(Some "nope")) |> ignore; "no error" with :? DatasetException as e -> e.Message
            Expect.stringContains message "unknown BBH task 'nope'" message
            Expect.stringContains message "boolean_expressions" "lists the tasks"
            Expect.stringContains message "word_sorting" "lists the tasks"
            inFolder (fun dir ->
                let input = Path.Combine(dir, "in.jsonl")
                File.WriteAllText(input, """{"prediction": "(B)", "reference": "(B)"}""")
                let output = Path.Combine(dir, "out.jsonl")
                Expect.equal (GradeCommand.Run(Bbh(Some "nope"), input, output)) 2 "exit code"
                Expect.isFalse (File.Exists output) "nothing written")
        testCase "the default task stays math: a numeric reference grades numerically, the BBH rules do not apply" <| fun () ->
            let graded, correct, out =
                gradeLines GradeTask.Math [
                    """{"prediction": "so \\boxed{145}", "reference": 145.0}"""
                    """{"prediction": "the answer is (A) or (B)", "reference": "(B)"}""" ]
            Expect.equal (graded, correct) (2, 1) "145 = 145.0; the math verifier does not read options"
            Expect.equal (out.[0].["extracted"].GetValue<string>()) "145" "the math verifier's extraction"
        testCase "errors name the line and the field, for bbh as for math" <| fun () ->
            for task in [ GradeTask.Math; Bbh None ] do
                let ok = """{"prediction": "(B)", "reference": "(B)"}"""
                Expect.stringContains (inputError task [ ok; ""; """{"prediction": "(B)"}""" ])
                    "3: missing field 'reference' (fields present: prediction)" (sprintf "%A" task)
                Expect.stringContains (inputError task [ """{"prediction": ["(B)"], "reference": "(B)"}""" ])
                    "1: field 'prediction' must be a string or a number" (sprintf "%A" task)
                Expect.stringContains (inputError task [ ok; "{not json" ]) "2: not valid JSON" (sprintf "%A" task)
        testCase "with --output the file is replaced only when every line grades (written atomically)" <| fun () ->
            inFolder (fun dir ->
                let input = Path.Combine(dir, "in.jsonl")
                let output = Path.Combine(dir, "out.jsonl")
                File.WriteAllText(output, "old\n")
                File.WriteAllLines(input, [ """{"prediction": "**(B)**", "reference": "(B)"}"""; """{"reference": "(B)"}""" ])
                Expect.equal (GradeCommand.Run(Bbh None, input, output)) 2 "a bad line: exit code 2"
                Expect.equal (File.ReadAllText output) "old\n" "the old output is untouched"
                File.WriteAllLines(input, [ """{"prediction": "**(B)**", "reference": "(B)"}"""; """{"prediction": "A or B", "reference": "(B)"}""" ])
                Expect.equal (GradeCommand.Run(Bbh None, input, output)) 0 "exit code"
                let lines = File.ReadAllLines output |> Array.map (fun l -> (JsonNode.Parse l).["correct"].GetValue<bool>())
                Expect.equal lines [| true; false |] "graded lines written"
                Expect.equal (Directory.GetFiles dir |> Array.map Path.GetFileName |> Array.sort) [| "in.jsonl"; "out.jsonl" |] "no temp file left")
        testCase "grade --task humaneval runs each completion with its unit tests: the canonical solution passes, return None fails" <| fun () ->
            let heFile = SimKO.Data.Code.HumanEval.DefaultPath()
            if not (File.Exists heFile) then skiptest "../shared/datasets/humaneval is not beside the repository"
            else
                match parse [ "--task"; "humaneval" ] with
                | Ok o -> Expect.equal o.Task HumanEval "parsed"
                | Error e -> failtestf "%A" e
                let problems = SimKO.Data.Code.HumanEval.Load(heFile)
                inFolder (fun dir ->
                    let input = Path.Combine(dir, "in.jsonl")
                    let output = Path.Combine(dir, "out.jsonl")
                    let line (id: string) (completion: string) = (JsonObject([ Collections.Generic.KeyValuePair("task_id", JsonValue.Create(id) :> JsonNode); Collections.Generic.KeyValuePair("completion", JsonValue.Create(completion) :> JsonNode) ])).ToJsonString()
                    File.WriteAllLines(input, [ line problems[0].TaskId problems[0].CanonicalSolution; line problems[2].TaskId "    return None\n" ])
                    Expect.equal (GradeCommand.RunHumanEval(heFile, input, output, false)) 0 "exit code"
                    let rows = File.ReadAllLines output |> Array.map (fun l -> JsonNode.Parse l)
                    Expect.equal (rows |> Array.map (fun r -> r.["passed"].GetValue<bool>())) [| true; false |] "passed"
                    Expect.stringContains (rows[1].["result"].GetValue<string>()) "failed" "result says why"
                    File.WriteAllLines(input, [ line "HumanEval/9999" "x" ])
                    Expect.equal (GradeCommand.RunHumanEval(heFile, input, output, false)) 2 "an unknown task_id is an input error")
    ]
