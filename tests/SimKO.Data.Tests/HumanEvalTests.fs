/// HumanEval as published: 164 problems read from the gzip file; every canonical solution passes its unit
/// tests in the sandbox and every body replaced by `return None` fails; stop sequences; the sample grader;
/// malformed files fail with file, line and field.
module SimKO.Data.Tests.HumanEvalTests

open System
open System.IO
open System.IO.Compression
open System.Text
open Expecto
open SimKO.Data.Code
open SimKO.Data.Math
open SimKO.Data.Sandbox
open SimKO.Data.Tests.SandboxFixture

let private problems =
    lazy (HumanEval.Load(HumanEval.DefaultPath(DatasetsTests.needShared ())))

let private load () = DatasetsTests.needShared () |> ignore; problems.Value

let private withFile (name: string) (write: Stream -> unit) (f: string -> unit) =
    let dir = Path.Combine(Path.GetTempPath(), "simko-humaneval-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    let path = Path.Combine(dir, name)
    try
        (use s = File.Create path in write s)
        f path
    finally Directory.Delete(dir, true)

let private gz (text: string) (s: Stream) =
    use z = new GZipStream(s, CompressionMode.Compress)
    let bytes = Encoding.UTF8.GetBytes text
    z.Write(bytes, 0, bytes.Length)

let private loadError path = try HumanEval.Load(path) |> ignore; "no error" with :? DatasetException as e -> e.Message

let tests =
    testList "humaneval" [
        testCase "the published file has 164 problems, HumanEval/0..163, every field filled" <| fun () ->
            let ps = load ()
            Expect.equal ps.Count HumanEval.ProblemCount "problems"
            Expect.sequenceEqual (ps |> Seq.map (fun p -> p.TaskId)) [ for i in 0 .. 163 -> sprintf "HumanEval/%d" i ] "ids in order"
            for p in ps do
                Expect.isTrue (p.Prompt.Contains("def " + p.EntryPoint)) (p.TaskId + ": the prompt defines the entry point")
                Expect.stringContains p.Test "def check(candidate)" p.TaskId
                Expect.isNonEmpty p.CanonicalSolution p.TaskId

        testCase "the program is prompt + completion + tests + check(entry point), as in the original harness" <| fun () ->
            let p = HumanEvalProblem("T/0", "def f(x):\n", "    return x\n", "def check(candidate):\n    assert candidate(1) == 1\n", "f")
            Expect.equal (HumanEval.Program(p, "    return x\n"))
                         "def f(x):\n    return x\n\ndef check(candidate):\n    assert candidate(1) == 1\n\ncheck(f)" "program text"

        testCase "every canonical solution passes its unit tests in the sandbox" <| fun () ->
            let ps = load ()
            let rs = (pool ()).GradeMany(ps |> Seq.map (fun p -> HumanEval.Program(p, p.CanonicalSolution)) |> Array.ofSeq)
            let failed = Seq.zip ps rs |> Seq.filter (fun (_, r) -> not r.Passed) |> Seq.map (fun (p, r) -> p.TaskId + ": " + r.Describe()) |> List.ofSeq
            Expect.isEmpty failed "canonical solutions that did not pass"

        testCase "every body replaced by 'return None' fails its unit tests" <| fun () ->
            let ps = load ()
            let rs = (pool ()).GradeMany(ps |> Seq.map (fun p -> HumanEval.Program(p, "    return None\n")) |> Array.ofSeq)
            let passed = Seq.zip ps rs |> Seq.filter (fun (_, r) -> r.Passed) |> Seq.map (fun (p, _) -> p.TaskId) |> List.ofSeq
            Expect.isEmpty passed "'return None' passed"
            Expect.all rs (fun r -> r.Outcome = Outcome.Failed) "each is a plain failure (no time-outs)"

        testCase "the code prompt is the problem's prompt; completions stop at the end of the function" <| fun () ->
            let p = (load ()).[0]
            Expect.equal (CodePrompt.Format p) p.Prompt "the model continues the function"
            let body = "    for a in numbers:\n        if a > threshold:\n            return True\n    return False\n"
            for tail in [ "\ndef other():\n    pass"; "\nclass A:\n    pass"; "\nif __name__ == '__main__':\n    main()"; "\nprint(has_close_elements([], 1))"; "\n# tests" ] do
                Expect.equal (CodePrompt.Truncate(body + tail)) body (sprintf "stops before %A" tail)
            Expect.equal (CodePrompt.Truncate body) body "a body with no stop is kept whole"
            Expect.equal (CodePrompt.Truncate "    if x:\n        return 1\n    return 2") "    if x:\n        return 1\n    return 2" "an indented if is not a stop"

        testCase "the grader adds passed and result to each sample line, in order" <| fun () ->
            let ps = load ()
            let grader = HumanEvalGrader(ps, pool ())
            let lines = [
                sprintf """{"task_id": "HumanEval/0", "completion": %s, "extra": 1}""" (Text.Json.JsonSerializer.Serialize ps.[0].CanonicalSolution)
                ""
                """{"task_id": "HumanEval/0", "completion": "    return None\n"}"""
                """{"task_id": "HumanEval/2", "completion": "    while True:\n        pass\n"}""" ]
            let rows = grader.GradeLines(lines, "samples.jsonl")
            Expect.equal rows.Count 3 "blank line skipped"
            Expect.equal (rows.[0].["passed"].GetValue<bool>(), rows.[0].["result"].GetValue<string>()) (true, "passed") "canonical"
            Expect.equal (rows.[0].["extra"].GetValue<int>()) 1 "other fields kept"
            Expect.equal (rows.[1].["passed"].GetValue<bool>()) false "None"
            Expect.stringStarts (rows.[1].["result"].GetValue<string>()) "failed: AssertionError" "None's result"
            Expect.equal (rows.[2].["result"].GetValue<string>()) "timed out" "loop"
            let message = try grader.GradeLines([ """{"task_id": "HumanEval/0"}""" ], "s.jsonl") |> ignore; "no error" with :? DatasetException as e -> e.Message
            Expect.equal message "s.jsonl:1: field 'completion' is missing or not a string" message
            let unknown = try grader.GradeLines([ ""; """{"task_id": "HumanEval/999", "completion": ""}""" ], "s.jsonl") |> ignore; "no error" with :? DatasetException as e -> e.Message
            Expect.equal unknown "s.jsonl:2: field 'task_id': unknown task 'HumanEval/999'" unknown

        testCase "malformed files fail with file, line and field" <| fun () ->
            let row = """{"task_id": "A/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n", "test": "def check(c):\n    pass\n", "entry_point": "f"}"""
            withFile "ok.jsonl.gz" (gz (row + "\n")) (fun path ->
                Expect.equal (HumanEval.Load(path).[0].EntryPoint) "f" "a gzip file reads")
            withFile "train.jsonl" (fun s -> let b = Encoding.UTF8.GetBytes(row.Replace("\"canonical_solution\": \"    return 1\\n\", ", "")) in s.Write(b, 0, b.Length)) (fun path ->
                let p = HumanEval.Load(path).[0]
                Expect.equal (p.CanonicalSolution, p.EntryPoint) ("", "f") "a training file may leave out canonical_solution")
            withFile "missing.jsonl.gz" (gz (row + "\n" + row.Replace("\"test\"", "\"tests\"").Replace("A/0", "A/1") + "\n")) (fun path ->
                Expect.equal (loadError path) (path + ":2: field 'test' is missing or not a string") "missing field")
            withFile "twice.jsonl" (fun s -> let b = Encoding.UTF8.GetBytes(row + "\n" + row + "\n") in s.Write(b, 0, b.Length)) (fun path ->
                Expect.equal (loadError path) (path + ":2: field 'task_id': 'A/0' appears twice") "duplicate")
            withFile "broken.jsonl" (fun s -> let b = Encoding.UTF8.GetBytes(row + "\n{not json\n") in s.Write(b, 0, b.Length)) (fun path ->
                Expect.stringStarts (loadError path) (path + ":2: not valid JSON") "bad JSON")
            withFile "notgzip.jsonl.gz" (fun s -> let b = Encoding.UTF8.GetBytes(row) in s.Write(b, 0, b.Length)) (fun path ->
                Expect.stringContains (loadError path) "not readable as gzip" "not gzip")
            Expect.stringContains (loadError "/nonexistent/HumanEval.jsonl.gz") "/nonexistent/HumanEval.jsonl.gz: HumanEval file not found" "absent"
    ]
