/// BIG-Bench Hard: every task file loads with its row count (6,511 in all), each target scores as
/// correct against itself (bare, boxed and "the answer is") and another task row's different target
/// as wrong; the scoring rules on hand-written cases; malformed files fail with file and example.
module SimKO.Data.Tests.BbhTests

open System
open System.IO
open Expecto
open SimKO.Data.Logic
open SimKO.Data.Math

let private needShared () = DatasetsTests.needShared ()

let private rowCounts =
    dict [ "causal_judgement", 187; "penguins_in_a_table", 146; "snarks", 178 ] // every other task has 250

let private withBbhFile (task: string) (text: string) (f: string -> string -> unit) =
    let root = Path.Combine(Path.GetTempPath(), "simko-bbh-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory(Path.Combine(root, "bbh")) |> ignore
    let path = Path.Combine(root, "bbh", task + ".json")
    File.WriteAllText(path, text)
    try f root path finally Directory.Delete(root, true)

let private loadError root task =
    try Bbh.Load(task, root) |> ignore; "no error" with :? DatasetException as e -> e.Message

let tests =
    testList "bbh" [
        testCase "every task file loads with its row count, 6,511 in all" <| fun () ->
            let root = needShared ()
            Expect.equal (Directory.GetFiles(Path.Combine(root, "bbh"), "*.json").Length) 27 "27 files"
            let mutable total = 0
            for task in Bbh.Tasks do
                let rows = Bbh.Load(task, root)
                let expected = if rowCounts.ContainsKey task then rowCounts.[task] else 250
                Expect.equal rows.Count expected task
                Expect.isTrue (rows |> Seq.forall (fun r -> r.Task = task && r.Input.Length > 0)) task
                total <- total + rows.Count
            Expect.equal total 6511 "rows in all"
        testCase "each target scores as correct against itself: bare, boxed, and after 'the answer is'" <| fun () ->
            let root = needShared ()
            for task in Bbh.Tasks do
                for r in Bbh.Load(task, root) do
                    // LaTeX escapes braces inside \boxed{} (Dyck targets contain them)
                    let boxed = r.Target.Replace("{", "\\{").Replace("}", "\\}")
                    for completion in [ r.Target; sprintf "Let me think.\nSo the final answer is \\boxed{%s}." boxed; sprintf "Step by step...\nSo the answer is %s." r.Target ] do
                        let extracted, ok = Bbh.Grade(completion, r.Target).ToTuple()
                        Expect.isTrue ok (sprintf "%s: '%s' (extracted '%s')" r.Id completion extracted)
        testCase "a shuffled target (another row's, different after normalising and without spaces) scores as wrong" <| fun () ->
            let root = needShared ()
            let rng = Random 7
            let mutable checkedCount = 0
            for task in Bbh.Tasks do
                let rows = Bbh.Load(task, root) |> Array.ofSeq
                let targets = rows |> Array.map _.Target
                rng.Shuffle targets
                for r, other in Array.zip rows targets do
                    let canonical (x: string) = (Bbh.Normalize x).Replace(" ", "")
                    if canonical other <> canonical r.Target then
                        Expect.isFalse (Bbh.Matches(other, r.Target)) (sprintf "%s: '%s' against target '%s'" r.Id other r.Target)
                        Expect.isFalse (snd (Bbh.Grade(sprintf "\\boxed{%s}" (other.Replace("{", "\\{").Replace("}", "\\}")), r.Target).ToTuple())) r.Id
                        checkedCount <- checkedCount + 1
            Expect.isGreaterThan checkedCount 3000 "most rows have a different shuffled target"
        testCase "the scoring rules" <| fun () ->
            for answer, target, expected in [
                "(B)", "(B)", true; "B", "(B)", true; "b)", "(B)", true; "(B) Frankenstein", "(B)", true
                "option (b)", "(B)", true; "\\text{(B)}", "(B)", true; "(C)", "(B)", false; "Bees", "(B)", false
                "true", "True", true; "True.", "True", true; "False", "True", false; "$24$", "24", true; "24.0", "24", true
                "-35", "-35", true; "−35", "-35", true; "35", "-35", false; "yes", "Yes", true; "no", "Yes", false
                "valid", "invalid", false; ")]}", ") ] }", true; "\\} )", "} )", true; ")]", ") ] }", false
                "apple  Banana cherry", "apple banana cherry", true; "banana apple cherry", "apple banana cherry", false
                "", "True", false ] do
                Expect.equal (Bbh.Matches(answer, target)) expected (sprintf "'%s' vs '%s'" answer target)
        testCase "answer extraction: boxed first, then 'the answer is', then a bare one-line answer" <| fun () ->
            Expect.equal (Bbh.ExtractAnswer "so (A)... the answer is (C).\nThus \\boxed{(B)}") "(B)" "last boxed"
            Expect.equal (Bbh.ExtractAnswer "Reasoning.\nSo the answer is (C).") "(C)" "the answer is"
            Expect.equal (Bbh.ExtractAnswer " (D) ") "(D)" "bare"
            Expect.isNull (Bbh.ExtractAnswer "line one\nline two without a marker") "no answer in a multi-line text"
            Expect.isNull (Bbh.ExtractAnswer "   ") "empty"
        testCase "names select all tasks or one; an unknown task is an error listing the known ones" <| fun () ->
            Expect.equal (Bbh.Select "bbh").Count 27 "all"
            Expect.sequenceEqual (Bbh.Select "bbh/web_of_lies") [ "web_of_lies" ] "one"
            let message = try Bbh.Select "bbh/nope" |> ignore; "no error" with :? DatasetException as e -> e.Message
            Expect.stringContains message "unknown BBH task 'nope'" message
            Expect.stringContains message "web_of_lies" "lists the known tasks"
        testCase "malformed files name the file, the example and what was expected" <| fun () ->
            withBbhFile "navigate" """{"canary": "x"}""" (fun root path ->
                let m = loadError root "navigate"
                Expect.stringContains m path "file"
                Expect.stringContains m "fields present: canary" m)
            withBbhFile "navigate" """{"examples": [{"input": "q", "target": "Yes"}, {"input": "q2"}]}""" (fun root _ ->
                let m = loadError root "navigate"
                Expect.stringContains m "examples[1]" m
                Expect.stringContains m "'target'" m
                Expect.stringContains m "fields present: input" m)
            withBbhFile "navigate" """{"examples": []}""" (fun root _ -> Expect.stringContains (loadError root "navigate") "empty" "empty file")
            withBbhFile "navigate" """{"examples": [""" (fun root _ -> Expect.stringContains (loadError root "navigate") "not valid JSON" "broken JSON")
    ]
