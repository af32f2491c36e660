/// Any JSONL file through explicit field options; bad rows stop the load with file and line, or,
/// opted in, are skipped and every one of them listed.
module SimKO.Tests.DatasetFileTests

open System.IO
open Expecto
open SimKO.Data.Math

let private write (lines: string list) =
    let path = Path.Combine(Path.GetTempPath(), sprintf "simko-rows-%d-%d.jsonl" System.Environment.ProcessId (abs (hash lines)))
    File.WriteAllLines(path, lines)
    path

let private fields = FieldOptions([| "q"; "question" |], "sol", AnswerFrom.BoxedInSolution, "id")

let tests =
    testList "dataset files" [
        testCase "explicit fields read questions, boxed answers and ids" <| fun () ->
            let path = write [ """{"id": "a", "q": "1+1?", "sol": "so \\boxed{2}."}"""; ""; """{"id": 7, "question": "2+2?", "sol": "\\boxed{4}"}""" ]
            let r = Datasets.LoadFile(path, fields)
            Expect.equal (r.Problems |> Seq.map (fun p -> p.Id, p.Question, p.Answer) |> List.ofSeq) [ "a", "1+1?", "2"; "7", "2+2?", "4" ] "rows"
            Expect.isEmpty r.Skipped "nothing skipped"
        testCase "a bad row stops the load naming file, line and fields, unless skipping is asked for" <| fun () ->
            let path = write [ """{"id": "a", "q": "1+1?", "sol": "\\boxed{2}"}"""; "{not json"; """{"id": "c", "text": "?", "sol": "\\boxed{3}"}"""; """{"id": "d", "q": "x", "sol": "no box"}""" ]
            Expect.throwsC (fun () -> Datasets.LoadFile(path, fields) |> ignore)
                (fun e -> Expect.stringContains e.Message (sprintf "%s:2: not valid JSON" path) "file and line")
            let r = Datasets.LoadFile(path, fields, skipBadRows = true)
            Expect.equal r.Problems.Count 1 "one good row"
            Expect.equal r.Skipped.Count 3 "three listed"
            Expect.stringContains r.Skipped.[1] "missing field 'q' or 'question' (fields present: id, text, sol)" "names the fields present"
            Expect.stringContains r.Skipped.[2] ":4: field 'sol' has no \\boxed" "names the field"
        testCase "a file of only bad rows is an error even when skipping" <| fun () ->
            let path = write [ "[1, 2]" ]
            Expect.throwsC (fun () -> Datasets.LoadFile(path, fields, skipBadRows = true) |> ignore)
                (fun e -> Expect.stringContains e.Message "every row was bad" "says so")
        testCase "a preset with a bad row: an error by default; skipped, logged and listed in skipped_rows.txt when asked" <| fun () ->
            let root = Path.Combine(Path.GetTempPath(), sprintf "simko-preset-%d" System.Environment.ProcessId)
            Directory.CreateDirectory(Path.Combine(root, "math500")) |> ignore
            File.WriteAllLines(Path.Combine(root, "math500", "test.jsonl"),
                               [ """{"problem": "1+1?", "answer": "2", "unique_id": "a"}"""; """{"problem": "2+2?"}""" ])
            let tok = SimKO.Data.Tokenizers.CharTokenizer(System.String([| yield '\n'; for c in ' ' .. '~' -> c |]))
            Expect.throwsC (fun () -> SimKO.Host.Runs.TaskBinding.Preset("math500", tok, SimKO.Cli.RunSpec.Plain, 8, root) |> ignore)
                (fun e -> Expect.stringContains e.Message "test.jsonl:2: missing field 'answer'" "file, line, field")
            let task = SimKO.Host.Runs.TaskBinding.Preset("math500", tok, SimKO.Cli.RunSpec.Plain, 8, root, skipBadRows = true)
            Expect.equal task.Test.Count 1 "the good row"
            Expect.equal task.SkippedRows.Count 1 "the bad row listed"
            let out = Path.Combine(root, "out")
            SimKO.Host.Runs.TaskBinding.ReportSkipped([ task ], out, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)
            Expect.stringContains (File.ReadAllText(Path.Combine(out, "skipped_rows.txt"))) "test.jsonl:2" "written for the run"
            Directory.Delete(root, true)
    ]
