/// Loading the published datasets and user files: row counts, references graded against themselves and
/// against the published solutions, and the error messages for bad input.
module SimKO.Data.Tests.DatasetTests

open System
open System.IO
open Expecto
open SimKO.Data
open SimKO.Data.Answers
open SimKO.Data.Datasets
open SimKO.Data.Tests.Support

/// Row counts as in ../shared/datasets/README.md.
let expectedRows =
    [ "math500", 500; "aime24", 30; "aime25", 30; "amc23", 40; "minerva_math", 272; "olympiadbench", 675
      "gsm8k/test", 1319; "gsm8k/train", 7473; "gsm8k", 1319 ]

let private load (root: string) (name: string) = DatasetLoader.Load(name, LoadOptions(Root = root))

let presetTests =
    testList "presets" [
        for name, rows in expectedRows do
            yield datasetTest (sprintf "%s loads %d rows and grades each reference, boxed, as correct" name rows) (fun root ->
                let d = load root name
                Expect.equal d.Problems.Count rows "rows"
                Expect.isEmpty d.Skipped "no skipped rows"
                Expect.equal (d.Problems |> Seq.map (fun p -> p.Id) |> Seq.distinct |> Seq.length) rows "ids are unique"
                for p in d.Problems do
                    Expect.isNotEmpty p.Question (sprintf "%s question" p.Id)
                    let completion = sprintf "Let me think.\nTherefore the final answer is $\\boxed{%s}$." p.Answer
                    let g = d.Verifier.Grade(p, completion)
                    Expect.isTrue g.Correct (sprintf "%s: reference %A graded against itself (extracted %A)" p.Id p.Answer g.Extracted))
    ]

let solutionTests =
    testList "published solutions and answers" [
        datasetTest "MATH-500: the last box of each published solution is equivalent to its answer" (fun root ->
            let rows = Text.Json.JsonDocument.Parse("[" + String.Join(",", File.ReadAllLines(Path.Combine(root, "math500", "test.jsonl"))) + "]")
            let d = load root "math500"
            for p, row in Seq.zip d.Problems (rows.RootElement.EnumerateArray()) do
                let solution = row.GetProperty("solution").GetString()
                Expect.isTrue (MathVerifier.Default.Score(p, solution) = 1.0) (sprintf "%s: solution's box vs %A" p.Id p.Answer))

        datasetTest "AIME 2024: the published solutions (\\textbf{(113) }, 25 for 025, 104.) grade as correct" (fun root ->
            let d = load root "aime24"
            let lines = File.ReadAllLines(Path.Combine(root, "aime24", "test.jsonl"))
            let mutable graded = 0
            for p, line in Seq.zip d.Problems lines do
                let solution = Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("solution").GetString()
                if solution.Contains "\\boxed" then
                    graded <- graded + 1
                    Expect.isTrue (MathVerifier.Default.Score(p, solution) = 1.0) (sprintf "%s: solution vs %A" p.Id p.Answer)
            Expect.isGreaterThan graded 25 "solutions with a box")

        datasetTest "GSM8K: the whole published answer text grades as correct through its #### line" (fun root ->
            let d = load root "gsm8k/test"
            let lines = File.ReadAllLines(Path.Combine(root, "gsm8k", "test.jsonl"))
            for p, line in Seq.zip d.Problems lines do
                let answer = Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("answer").GetString()
                Expect.isTrue (d.Verifier.Score(p, answer) = 1.0) (sprintf "%s: %A" p.Id p.Answer))

        datasetTest "GSM8K: a wrong number is graded wrong for every test problem" (fun root ->
            let d = load root "gsm8k/test"
            for p in d.Problems do
                let value = Decimal.Parse(p.Answer.Replace(",", ""), Globalization.CultureInfo.InvariantCulture)
                let wrong = sprintf "\\boxed{%M}" (value + 1M)
                Expect.isFalse (d.Verifier.Score(p, wrong) = 1.0) (sprintf "%s: %s accepted for %s" p.Id wrong p.Answer))

        datasetTest "OlympiadBench keeps multiple answers and units, and accepts multiple answers in any order" (fun root ->
            let d = load root "olympiadbench"
            let multi = d.Problems |> Seq.filter (fun p -> p.IsMultipleAnswer) |> Seq.toList
            Expect.equal multi.Length 94 "is_multiple_answer rows"
            Expect.equal (d.Problems |> Seq.filter (fun p -> not (isNull p.Unit)) |> Seq.length) 8 "rows with a unit"
            let p = multi |> List.find (fun p -> p.Answer = "$69$,$84$")
            Expect.isTrue (d.Verifier.Score(p, "So $\\boxed{84, 69}$.") = 1.0) "reversed in one box"
            Expect.isTrue (d.Verifier.Score(p, "$\\boxed{69}$ and $\\boxed{84}$") = 1.0) "one box each"
            Expect.isFalse (d.Verifier.Score(p, "$\\boxed{69}$") = 1.0) "only one of two"
            let withUnit = d.Problems |> Seq.find (fun p -> p.Unit = "km/h")
            Expect.isTrue (d.Verifier.Score(withUnit, sprintf "\\boxed{%s \\text{ km/h}}" withUnit.Answer) = 1.0) "answer with its unit")

        datasetTest "Minerva answers come from the last box of the solution" (fun root ->
            let d = load root "minerva_math"
            Expect.equal d.Problems.[0].Answer "1.6" "first answer"
            Expect.isTrue (d.Verifier.Score(d.Problems.[0], "\\boxed{1.6 \\mathrm{~cm}}") = 1.0) "with its unit")

        datasetTest "AMC numbers keep their published text" (fun root ->
            let d = load root "amc23"
            Expect.equal d.Problems.[0].Answer "27.0" "27.0"
            Expect.isTrue (d.Verifier.Score(d.Problems.[0], "\\boxed{27}") = 1.0) "27 for 27.0")

        test "an unknown preset names the presets" {
            let e = expectDataError (fun () -> DatasetLoader.Load("math5000", LoadOptions(Root = Path.GetTempPath())) |> ignore)
            expectMentions e.Message [ "math5000"; "math500"; "olympiadbench"; "gsm8k/train"; "bbh" ]
        }
    ]

let private loadFile (path: string) (fields: FieldMap) (skip: bool) =
    DatasetLoader.Load(path, LoadOptions(Fields = fields, SkipBadRows = skip))

let fileTests =
    testList "files" [
        test "a custom JSONL file with its own field names" {
            withTempFile ".jsonl" "{\"q\": \"1+1?\", \"sol\": \"It is \\\\boxed{2}.\", \"k\": 5}\n\n{\"q\": \"2+2?\", \"sol\": \"\\\\boxed{4}\"}\n" (fun path ->
                let fields = FieldMap(QuestionFields = [ "q" ], AnswerField = "sol", AnswerSource = AnswerSource.LastBoxed, IdField = "k")
                let d = loadFile path fields false
                Expect.equal (d.Problems |> Seq.map (fun p -> p.Answer) |> Seq.toList) [ "2"; "4" ] "answers"
                Expect.stringEnds d.Problems.[0].Id "/5" "id from the id field"
                Expect.stringEnds d.Problems.[1].Id "/3" "id from the line number (blank line 2 is not a row)"
                Expect.stringEnds d.Problems.[1].Source ":3" "source line")
        }
        test "a malformed line names file, line and what was wrong" {
            withTempFile ".jsonl" "{\"problem\": \"a\", \"answer\": \"1\"}\n{\"problem\": \"b\", \"answer\": \n" (fun path ->
                let e = expectDataError (fun () -> loadFile path (FieldMap()) false |> ignore)
                expectMentions e.Message [ Path.GetFileName path + ":2:"; "not valid JSON" ]
                Expect.equal e.Location "2" "location")
        }
        test "a missing field names the field and lists the fields that are there" {
            withTempFile ".jsonl" "{\"problem\": \"a\", \"solution\": \"x\"}\n" (fun path ->
                let e = expectDataError (fun () -> loadFile path (FieldMap()) false |> ignore)
                expectMentions e.Message [ ":1:"; "'answer' is missing"; "problem, solution" ]
                Expect.equal e.Field "answer" "field")
        }
        test "a field of the wrong type says what was expected" {
            withTempFile ".jsonl" "{\"problem\": \"a\", \"answer\": {\"x\": 1}}\n" (fun path ->
                let e = expectDataError (fun () -> loadFile path (FieldMap()) false |> ignore)
                expectMentions e.Message [ "'answer' is an object"; "expected a string, a number or a list of strings" ])
        }
        test "a solution without a box cannot give an answer" {
            withTempFile ".jsonl" "{\"problem\": \"a\", \"solution\": \"no box here\"}\n" (fun path ->
                let fields = FieldMap(AnswerField = "solution", AnswerSource = AnswerSource.LastBoxed)
                let e = expectDataError (fun () -> loadFile path fields false |> ignore)
                expectMentions e.Message [ ":1:"; "'solution'"; "\\boxed" ])
        }
        test "an empty file is an error" {
            withTempFile ".jsonl" "\n\n" (fun path ->
                let e = expectDataError (fun () -> loadFile path (FieldMap()) false |> ignore)
                expectMentions e.Message [ "no rows" ])
        }
        test "a missing file says where it looked" {
            let e = expectDataError (fun () -> DatasetLoader.Load(DatasetSource("x", [ "/nonexistent/dir/x.jsonl" ], FieldMap(), GraderKind.Math)) |> ignore)
            expectMentions e.Message [ "x.jsonl"; "not found" ]
        }
        test "skip-bad-rows keeps the good rows and lists every bad one" {
            let content =
                String.Join("\n",
                    [ "{\"problem\": \"a\", \"answer\": \"1\"}"
                      "not json"
                      "{\"problem\": \"b\"}"
                      "[1, 2]"
                      "{\"problem\": \"c\", \"answer\": 3}" ])
            withTempFile ".jsonl" content (fun path ->
                let d = loadFile path (FieldMap()) true
                Expect.equal (d.Problems |> Seq.map (fun p -> p.Answer) |> Seq.toList) [ "1"; "3" ] "good rows"
                Expect.equal (d.Skipped |> Seq.map (fun s -> s.Location) |> Seq.toList) [ "2"; "3"; "4" ] "skipped lines"
                let report = d.Report()
                expectMentions report [ "2 problems"; "skipped 3 bad row(s)"; ":2: not valid JSON"; ":3: field 'answer' is missing"; ":4: expected a JSON object, found an array" ])
        }
        test "a file whose rows are all bad is an error even when skipping" {
            withTempFile ".jsonl" "{\"x\": 1}\n" (fun path ->
                let e = expectDataError (fun () -> loadFile path (FieldMap()) true |> ignore)
                expectMentions e.Message [ "no usable rows" ])
        }
        test "a JSON array file and a JSON object with an examples array" {
            withTempFile ".json" "[{\"question\": \"q1\", \"answer\": \"1\"}, {\"question\": \"q2\", \"answer\": [\"2\", \"3\"]}]" (fun path ->
                let d = loadFile path (FieldMap()) false
                Expect.equal (d.Problems |> Seq.map (fun p -> p.Answer) |> Seq.toList) [ "1"; "2,3" ] "answers (a list joined)")
            withTempFile ".json" "{\"canary\": \"x\", \"examples\": [{\"input\": \"i\", \"target\": \"(A)\"}, 7]}" (fun path ->
                let fields = FieldMap(QuestionFields = [ "input" ], AnswerField = "target")
                let e = expectDataError (fun () -> loadFile path fields false |> ignore)
                expectMentions e.Message [ "examples[1]"; "expected a JSON object, found a number" ])
            withTempFile ".json" "{\"rows\": []}" (fun path ->
                let e = expectDataError (fun () -> loadFile path (FieldMap()) false |> ignore)
                expectMentions e.Message [ "'examples'"; "rows" ])
        }
        test "an unknown file type lists the supported ones" {
            withTempFile ".csv" "a,b\n" (fun path ->
                let e = expectDataError (fun () -> loadFile path (FieldMap()) false |> ignore)
                expectMentions e.Message [ ".csv"; ".jsonl"; ".parquet" ])
        }
        test "invalid field maps are refused with every problem listed" {
            let fields = FieldMap(QuestionFields = [], AnswerField = " ")
            Expect.equal (fields.Validate().Count) 2 "two problems"
        }
    ]

[<CLIMutable>]
type ParquetRow = { problem: string; answer: string; level: int; final_answer: Collections.Generic.List<string> }

let parquetTests =
    testList "parquet" [
        test "a Parquet file loads through the same field map, lists included" {
            let path = Path.Combine(Path.GetTempPath(), sprintf "simko-%s.parquet" (Guid.NewGuid().ToString("N")))
            try
                let rows =
                    [ { problem = "What is 1+1?"; answer = "2"; level = 1; final_answer = Collections.Generic.List [ "2" ] }
                      { problem = "Roots of x^2=1?"; answer = "1,-1"; level = 3; final_answer = Collections.Generic.List [ "1"; "-1" ] } ]
                do (use stream = File.Create path
                    Parquet.Serialization.ParquetSerializer.SerializeAsync(rows, stream).GetAwaiter().GetResult() |> ignore)
                let d = loadFile path (FieldMap(MetadataFields = [ "level" ])) false
                Expect.equal (d.Problems |> Seq.map (fun p -> p.Question) |> Seq.toList) [ "What is 1+1?"; "Roots of x^2=1?" ] "questions"
                Expect.equal d.Problems.[1].Metadata.["level"] "3" "metadata"
                Expect.stringEnds d.Problems.[1].Source "row 1" "row location"
                let lists = loadFile path (FieldMap(AnswerField = "final_answer")) false
                Expect.equal lists.Problems.[1].Answer "1,-1" "list column joined"
                Expect.isTrue (lists.Verifier.Score(lists.Problems.[1], "\\boxed{-1, 1}") = 1.0) "graded as a list"
            finally
                File.Delete path
        }
        test "a file that is not Parquet says so" {
            withTempFile ".parquet" "this is not parquet" (fun path ->
                let e = expectDataError (fun () -> loadFile path (FieldMap()) false |> ignore)
                expectMentions e.Message [ "not a readable Parquet file" ])
        }
    ]

let tests = testList "datasets" [ presetTests; solutionTests; fileTests; parquetTests ]
