/// Datasets: the seven presets load every row with the README's counts and each reference answer
/// grades correct against itself; malformed files fail with file, line and field; a field of the
/// wrong type says its type and the type expected; numeric answers; question templates.
module SimKO.Data.Tests.DatasetsTests

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data.Math

/// Property configuration of the data tests: `maxTest` cases and a fixed seed, as the suite's
/// (SIMKO_PROPERTY_SEED=<n> explores others).
let propertyConfig maxTest =
    let seed =
        match Environment.GetEnvironmentVariable "SIMKO_PROPERTY_SEED" with
        | null | "" -> 20251123UL
        | s -> uint64 s
    { FsCheckConfig.defaultConfig with maxTest = maxTest; replay = Some(seed, 0x9E3779B97F4A7C15UL, None) }

/// `<repo root>/../shared/datasets`, the repo root found by walking up to SimKO.sln.
let sharedRoot () =
    match Datasets.FindRepoRoot AppContext.BaseDirectory with
    | null -> None
    | repo ->
        let root = Path.GetFullPath(Path.Combine(repo, "..", "shared", "datasets"))
        if Directory.Exists root then Some root else None

let needShared () =
    match sharedRoot () with
    | Some root -> root
    | None -> skiptest "../shared/datasets is absent (a clone without the shared benchmark files); dataset checks skipped"

/// Rows per file, as the datasets README lists them.
let private expectedRows = [
    "math500", "test", 500
    "aime24", "test", 30
    "aime25", "test", 30
    "amc23", "test", 40
    "minerva_math", "test", 272
    "olympiadbench", "test", 675
    "gsm8k", "test", 1319
    "gsm8k", "train", 7473
]

let private withFile (folder: string) (split: string) (text: string) (f: string -> string -> unit) =
    let root = Path.Combine(Path.GetTempPath(), "simko-datasets-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory(Path.Combine(root, folder)) |> ignore
    let path = Path.Combine(root, folder, split + ".jsonl")
    File.WriteAllText(path, text)
    try f root path finally Directory.Delete(root, true)

let private failsWith (load: unit -> obj) (parts: string list) =
    try load () |> ignore; failtest "expected a DatasetException"
    with :? DatasetException as e ->
        for p in parts do Expect.stringContains e.Message p "the message names it"

/// A JSONL file of these lines in a temp folder, deleted after `f` has used it.
let private withLines (lines: string list) (f: string -> unit) =
    let dir = Path.Combine(Path.GetTempPath(), "simko-rows-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    let path = Path.Combine(dir, "rows.jsonl")
    File.WriteAllLines(path, lines)
    try f path finally Directory.Delete(dir, true)

/// The message of the DatasetException that `load` throws.
let private messageOf (load: unit -> obj) =
    try load () |> ignore; failtest "expected a DatasetException"
    with :? DatasetException as e -> e.Message

let private opts (question: string list) (answer: string) = FieldOptions(Array.ofList question, answer)

let private svamp template = FieldOptions.FromTemplate(QuestionTemplate.Parse template, "Answer", AnswerFrom.Answer, "ID")

/// SVAMP's layout: the question spans Body and Question, the answer is a number.
let private svampRows = [
    """{"ID": "chal-1", "Body": "Jack had 8 pens and Mary had 5 pens.", "Question": "How many pens do they have?", "Equation": "( 8.0 + 5.0 )", "Answer": 13.0}"""
    """{"ID": "chal-2", "Body": "A box holds 145 apples.", "Question": "How many apples are in it?", "Equation": "145.0", "Answer": 145.0}"""
]

let tests =
    testList "Datasets" [
        testList "presets" [
            for name, split, rows in expectedRows do
                test (sprintf "%s/%s: %d rows, each reference grades correct against itself" name split rows) {
                    let root = needShared ()
                    let problems = Datasets.Load(name, root, split)
                    Expect.equal problems.Count rows "rows"
                    let wrong =
                        problems |> Seq.filter (fun p ->
                            let struct (_, bare) = MathGrader.Grade(p.Answer, p.Answer)
                            let struct (e, boxed) = MathGrader.Grade("Thus\n\\[\\boxed{" + p.Answer + "}\\]", p.Answer)
                            String.IsNullOrWhiteSpace p.Question || not bare || not boxed || e <> p.Answer)
                        |> Seq.map (fun p -> p.Id, p.Answer) |> List.ofSeq
                    Expect.isEmpty wrong "rows whose reference is not correct against itself"
                    let ids = problems |> Seq.map (fun p -> p.Id) |> Set.ofSeq
                    Expect.equal ids.Count rows "ids are unique"
                }
        ]
        test "answers come from each file's own field" {
            let root = needShared ()
            let first name = (Datasets.Load(name, root)).[0]
            Expect.equal (first "amc23").Answer "27.0" "amc23 answer is a number"
            Expect.equal (first "gsm8k").Answer "18" "gsm8k: after ####"
            Expect.equal (first "minerva_math").Answer "1.6" "minerva: last boxed of solution"
            Expect.equal (first "olympiadbench").Answer "2" "olympiadbench: final_answer list"
            Expect.equal (first "math500").Id "test/precalculus/807.json" "math500 id"
        }
        test "a malformed line names the file and line number" {
            withFile "aime25" "test" "{\"problem\": \"p\", \"answer\": \"1\"}\n{not json\n" (fun root path ->
                failsWith (fun () -> box (Datasets.Load("aime25", root))) [ path + ":2:" ])
        }
        test "a missing field names it and lists the fields present" {
            withFile "math500" "test" "{\"problem\": \"p\", \"solution\": \"s\"}\n" (fun root path ->
                failsWith (fun () -> box (Datasets.Load("math500", root))) [ path + ":1:"; "'answer'"; "problem, solution" ])
        }
        test "a minerva solution without a boxed answer is an error" {
            withFile "minerva_math" "test" "{\"problem\": \"p\", \"solution\": \"no box\"}\n" (fun root _ ->
                failsWith (fun () -> box (Datasets.Load("minerva_math", root))) [ "'solution'"; "boxed" ])
        }
        test "an empty file is an error" {
            withFile "gsm8k" "test" "\n" (fun root path ->
                failsWith (fun () -> box (Datasets.Load("gsm8k", root))) [ path; "no rows" ])
        }
        test "olympiadbench final_answer as a list or as a list written in a string" {
            let rows =
                "{\"id\": 1, \"question\": \"q\", \"final_answer\": [\"$69$\", \"$84$\"]}\n"
                + "{\"id\": 2, \"question\": \"q\", \"final_answer\": \"['$\\\\\\\\frac{1}{2}$']\"}\n"
            withFile "olympiadbench" "test" rows (fun root _ ->
                let ps = Datasets.Load("olympiadbench", root)
                Expect.equal ps.[0].Answer "$69$, $84$" "list"
                Expect.equal ps.[1].Answer "$\\frac{1}{2}$" "string")
        }
        test "an unknown preset lists the known ones" {
            failsWith (fun () -> box (Datasets.Load("math501", "/nonexistent"))) [ "math501"; "math500" ]
        }
        test "the repo root is found from the test binaries" {
            let repo = Datasets.FindRepoRoot AppContext.BaseDirectory
            Expect.isNotNull repo "SimKO.sln above the test binaries"
            Expect.isTrue (File.Exists(Path.Combine(repo, "SimKO.sln"))) "SimKO.sln"
        }
        testList "field types" [
            test "a question field of the wrong type names the field, its type and the type expected" {
                withLines [ """{"input": 17, "target": "3"}""" ] (fun path ->
                    let m = messageOf (fun () -> box (Datasets.LoadFile(path, opts [ "input" ] "target")))
                    Expect.stringContains m (path + ":1: field 'input' is a number (17), expected a string") m
                    Expect.isFalse (m.Contains "missing") "not reported as missing")
            }
            test "an answer, solution, id or final_answer of the wrong type says which type it has and which was expected" {
                let cases = [
                    """{"q": "x", "a": {"v": 1}}""", opts [ "q" ] "a", "field 'a' is an object, expected a string or a number"
                    """{"q": "x", "a": true}""", opts [ "q" ] "a", "field 'a' is a boolean (true), expected a string or a number"
                    """{"q": "x", "a": [1, 2]}""", opts [ "q" ] "a", "field 'a' is a list of 2, expected a string or a number"
                    """{"q": "x", "sol": 5}""", FieldOptions([| "q" |], "sol", AnswerFrom.BoxedInSolution), "field 'sol' is a number (5), expected a string"
                    """{"q": "x", "sol": 5}""", FieldOptions([| "q" |], "sol", AnswerFrom.AfterHashes), "field 'sol' is a number (5), expected a string"
                    """{"q": "x", "a": "1", "id": [1]}""", FieldOptions([| "q" |], "a", AnswerFrom.Answer, "id"), "field 'id' is a list of 1, expected a string or a number (the id)"
                    """{"q": "x", "final_answer": 3}""", FieldOptions([| "q" |], "", AnswerFrom.FinalAnswerList), "field 'final_answer' is a number (3), expected a list of strings"
                    """{"q": "x", "final_answer": ["1", null]}""", FieldOptions([| "q" |], "", AnswerFrom.FinalAnswerList), "field 'final_answer' item 2 is null, expected a string or a number"
                    """{"q": ["x"], "a": "1"}""", opts [ "q" ] "a", "field 'q' message 1: is a string (\"x\"), expected an object {\"role\", \"content\"}"
                    """{"q": "x", "a": null}""", opts [ "q" ] "a", "field 'a' is null (fields present: q, a)"
                ]
                for line, fields, expected in cases do
                    withLines [ line ] (fun path ->
                        let m = messageOf (fun () -> box (Datasets.LoadFile(path, fields)))
                        Expect.stringContains m (path + ":1: " + expected) line)
            }
            test "a question field of the wrong type is an error even when a later question field has a string" {
                withLines [ """{"problem": 12, "question": "2+2?", "answer": "4"}""" ] (fun path ->
                    let m = messageOf (fun () -> box (Datasets.LoadFile(path, opts [ "problem"; "question" ] "answer")))
                    Expect.stringContains m "field 'problem' is a number (12), expected a string" m)
            }
            test "with skipBadRows a row of the wrong type is listed with its message, the good rows kept" {
                withLines [ """{"input": "1+1?", "target": "2"}"""; """{"input": 17, "target": "3"}""" ] (fun path ->
                    let r = Datasets.LoadFile(path, opts [ "input" ] "target", skipBadRows = true)
                    Expect.equal r.Problems.Count 1 "the good row"
                    Expect.equal (List.ofSeq r.Skipped) [ path + ":2: field 'input' is a number (17), expected a string (the question)" ] "the bad row, named")
            }
        ]
        testList "numeric answers" [
            test "a number in the answer field is read as the file writes it and grades equal to the plain number" {
                withLines [ """{"q": "a", "a": 145.0}"""; """{"q": "b", "a": 17}"""; """{"q": "c", "a": -2.50}"""; """{"q": "d", "a": 1e3}"""; """{"q": "e", "a": 2.5E-2}""" ] (fun path ->
                    let answers = (Datasets.LoadFile(path, opts [ "q" ] "a")).Problems |> Seq.map _.Answer |> List.ofSeq
                    Expect.equal answers [ "145.0"; "17"; "-2.50"; "1000"; "0.025" ] "as written; exponents written out"
                    for prediction, reference in List.zip [ "145"; "\\boxed{17}"; "the answer is -2.5"; "1000"; "0.025" ] answers do
                        let struct (_, ok) = MathGrader.Grade(prediction, reference)
                        Expect.isTrue ok (sprintf "'%s' against '%s'" prediction reference)
                    let struct (_, wrong) = MathGrader.Grade("146", answers.[0])
                    Expect.isFalse wrong "146 is not 145.0")
            }
            testPropertyWithConfig (propertyConfig 200) "an integer written with trailing zeros (n.000) loads and grades equal to n and not to n + 1" <|
                fun (n: int) (NonNegativeInt zeros) ->
                    let written = if zeros % 4 = 0 then string n else string n + "." + String('0', zeros % 4)
                    let mutable result = false
                    withLines [ sprintf """{"q": "x", "a": %s}""" written ] (fun path ->
                        let answer = (Datasets.LoadFile(path, opts [ "q" ] "a")).Problems.[0].Answer
                        let struct (_, same) = MathGrader.Grade(string n, answer)
                        let struct (_, next) = MathGrader.Grade(string (int64 n + 1L), answer)
                        result <- answer = written && same && not next)
                    result
        ]
        testList "question templates" [
            test "SVAMP: the question is Body and Question joined by the template, the number answer grades" {
                withLines svampRows (fun path ->
                    let r = Datasets.LoadFile(path, svamp "{Body} {Question}")
                    Expect.equal (r.Problems |> Seq.map (fun p -> p.Id, p.Question, p.Answer) |> List.ofSeq)
                        [ "chal-1", "Jack had 8 pens and Mary had 5 pens. How many pens do they have?", "13.0"
                          "chal-2", "A box holds 145 apples. How many apples are in it?", "145.0" ] "rows"
                    let struct (_, ok) = MathGrader.Grade("\\boxed{145}", r.Problems.[1].Answer)
                    Expect.isTrue ok "145 grades equal to 145.0")
            }
            test "doubled braces are literal braces; a number field is written as the file writes it" {
                withLines [ """{"Item": "pen", "Price": 3.50, "Answer": "7"}""" ] (fun path ->
                    let fields = FieldOptions.FromTemplate(QuestionTemplate.Parse "{{{Item}}} costs {Price}; {{twice}}?", "Answer")
                    Expect.equal (Datasets.LoadFile(path, fields)).Problems.[0].Question "{pen} costs 3.50; {twice}?" "question")
            }
            test "a row without a template field names the file, the line, the field and the template" {
                withLines [ svampRows.[0]; """{"ID": "chal-3", "Body": "No question here.", "Answer": 1}""" ] (fun path ->
                    let m = messageOf (fun () -> box (Datasets.LoadFile(path, svamp "{Body} {Question}")))
                    Expect.stringContains m (path + ":2: missing field 'Question'") m
                    Expect.stringContains m "fields present: ID, Body, Answer" m
                    Expect.stringContains m "named by the question template \"{Body} {Question}\"" m)
            }
            test "a template field of the wrong type or null names the line, the field, its type and the type expected" {
                withLines [ svampRows.[0]; """{"ID": "chal-3", "Body": ["a", "b"], "Question": "Why?", "Answer": 1}""" ] (fun path ->
                    let m = messageOf (fun () -> box (Datasets.LoadFile(path, svamp "{Body} {Question}")))
                    Expect.stringContains m (path + ":2: field 'Body' is a list of 2, expected a string or a number") m)
                withLines [ """{"ID": "chal-3", "Body": "b", "Question": null, "Answer": 1}""" ] (fun path ->
                    let m = messageOf (fun () -> box (Datasets.LoadFile(path, svamp "{Body} {Question}")))
                    Expect.stringContains m (path + ":1: field 'Question' is null") m)
            }
            test "bad templates are errors naming the template and what is wrong" {
                for template, expected in [
                    "What is the answer?", "names no field"
                    "{{Body}} only braces", "names no field"
                    "{Body} {Question", "'{' at character 8 is not closed"
                    "{Body} Question}", "'}' at character 16 closes no field"
                    "{Body} {} ?", "'{}' at character 8 names no field"
                    "{Body {Question}", "'{' at character 1 is not closed" ] do
                    let m = messageOf (fun () -> box (QuestionTemplate.Parse template))
                    Expect.stringContains m (sprintf "question template \"%s\"" template) template
                    Expect.stringContains m expected template
            }
            test "question fields and a template together, or neither, are an error" {
                withLines svampRows (fun path ->
                    let both = FieldOptions([| "Body" |], "Answer", QuestionTemplate = QuestionTemplate.Parse "{Body} {Question}")
                    Expect.stringContains (messageOf (fun () -> box (Datasets.LoadFile(path, both)))) "not both" "both"
                    Expect.stringContains (messageOf (fun () -> box (Datasets.LoadFile(path, FieldOptions([||], "Answer")))))
                        "no question field or question template given" "neither")
            }
            test "a template's fields are listed once each, in order of first use" {
                Expect.sequenceEqual (QuestionTemplate.Parse "{b} and {a}, then {b} again {{c}}").Fields [ "b"; "a" ] "fields"
            }
            testPropertyWithConfig (propertyConfig 300) "a template fills to its literal text and each field's value, with doubled braces written once" <|
                Prop.forAll (Arb.fromGen (
                    // pieces: literal text (braces included) or one of three field names
                    Gen.listOf (Gen.oneof [
                        Gen.elements [ "{"; "}"; "{{"; " "; "a"; "Body"; "?"; "}{"; "" ] |> Gen.map Choice1Of2
                        Gen.elements [ "x"; "Body"; "long name" ] |> Gen.map Choice2Of2 ]))) (fun pieces ->
                    let values = dict [ "x", "1"; "Body", "{text}"; "long name", "" ]
                    let text = pieces |> List.map (function Choice1Of2 l -> l.Replace("{", "{{").Replace("}", "}}") | Choice2Of2 f -> "{" + f + "}") |> String.concat ""
                    let expected = pieces |> List.map (function Choice1Of2 l -> l | Choice2Of2 f -> values.[f]) |> String.concat ""
                    let hasField = pieces |> List.exists (function Choice2Of2 _ -> true | _ -> false)
                    try (QuestionTemplate.Parse text).Fill(fun f -> values.[f]) = expected && hasField
                    with :? DatasetException as e -> not hasField && e.Message.Contains "names no field")
        ]
    ]
