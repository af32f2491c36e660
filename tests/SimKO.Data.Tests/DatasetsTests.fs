/// Datasets: the seven presets load every row with the README's counts and each reference answer
/// grades correct against itself; malformed files fail with file, line and field.
module SimKO.Data.Tests.DatasetsTests

open System
open System.IO
open Expecto
open SimKO.Data.Math

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
    ]
