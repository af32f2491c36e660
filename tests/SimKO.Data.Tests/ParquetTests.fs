/// Parquet files through Datasets.LoadFile: each row reads as the same JSONL row would (question
/// fields in order, answer modes, ids, numeric answer columns, question templates); missing columns,
/// null values, columns of the wrong type, garbage and empty files fail naming the file (and the row),
/// or bad rows are skipped and listed when asked.
module SimKO.Data.Tests.ParquetTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open Parquet.Serialization
open SimKO.Data.Math

[<CLIMutable>]
type MathRow = { id: string; question: string; answer: string; solution: string }

[<CLIMutable>]
type OlympiadRow = { id: Nullable<int>; question: string; final_answer: List<string> }

[<CLIMutable>]
type OlympiadTextRow = { question: string; final_answer: string }

[<CLIMutable>]
type GsmRow = { problem: string; answer: string }

/// Answers in numeric columns: a double, an int, a float.
[<CLIMutable>]
type NumericRow = { question: string; answer: float; count: int; ratio: float32 }

/// A question column that holds numbers.
[<CLIMutable>]
type NumericQuestionRow = { question: int; answer: string }

/// SVAMP's layout: the question spans Body and Question.
[<CLIMutable>]
type SvampRow = { ID: string; Body: string; Question: string; Answer: float }

/// A temp folder for one test, deleted after it.
let private inFolder (f: string -> unit) =
    let dir = Path.Combine(Path.GetTempPath(), "simko-parquet-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    try f dir finally Directory.Delete(dir, true)

let private write (dir: string) (name: string) (rows: 'T list) =
    let path = Path.Combine(dir, name)
    ParquetSerializer.SerializeAsync(rows, path).GetAwaiter().GetResult() |> ignore
    path

let private mathRows : MathRow list = [
    { id = "m1"; question = "1+1?"; answer = " 2 "; solution = "so \\boxed{2}." }
    { id = null; question = "2+2?"; answer = "4"; solution = "\\boxed{3} then \\boxed{4}" }
    { id = "m3"; question = "3+3?"; answer = null; solution = "\\boxed{6}" }
]

let private failsWith (load: unit -> obj) (parts: string list) =
    try load () |> ignore; failtest "expected a DatasetException"
    with :? DatasetException as e ->
        for p in parts do Expect.stringContains e.Message p "the message names it"

let private triples (r: LoadResult) = r.Problems |> Seq.map (fun p -> p.Id, p.Question, p.Answer) |> List.ofSeq

let tests =
    testList "Parquet" [
        test "rows read questions, answers and ids, with the default id from the row number" {
            inFolder (fun dir ->
                let path = write dir "mathset.parquet" (mathRows |> List.take 2)
                let r = Datasets.LoadFile(path, FieldOptions([| "problem"; "question" |], "answer", AnswerFrom.Answer, "id"))
                Expect.equal (triples r) [ "m1", "1+1?", "2"; "mathset-2", "2+2?", "4" ] "rows"
                Expect.isEmpty r.Skipped "nothing skipped")
        }
        test "the last boxed answer of a solution column" {
            inFolder (fun dir ->
                let path = write dir "minerva.parquet" mathRows
                let r = Datasets.LoadFile(path, FieldOptions([| "question" |], "solution", AnswerFrom.BoxedInSolution))
                Expect.equal (r.Problems |> Seq.map (fun p -> p.Answer) |> List.ofSeq) [ "2"; "4"; "6" ] "boxed answers"
                Expect.equal (r.Problems |> Seq.map (fun p -> p.Id) |> List.ofSeq) [ "minerva-1"; "minerva-2"; "minerva-3" ] "ids")
        }
        test "the text after #### of an answer column, the question from the second field tried" {
            inFolder (fun dir ->
                let path = write dir "gsm.parquet" [ ({ problem = "How many?"; answer = "3 + 4 = 7\n#### 7" } : GsmRow) ]
                let r = Datasets.LoadFile(path, FieldOptions([| "question"; "problem" |], "answer", AnswerFrom.AfterHashes))
                Expect.equal (triples r) [ "gsm-1", "How many?", "7" ] "after hashes")
        }
        test "final_answer as a list<string> column, or as a list written in a string column" {
            inFolder (fun dir ->
                let path =
                    write dir "olympiad.parquet" [
                        ({ id = Nullable 11; question = "q1"; final_answer = List [ "$69$"; " $84$" ] } : OlympiadRow)
                        { id = Nullable 12; question = "q2"; final_answer = List [ "$\\frac{1}{2}$" ] } ]
                let r = Datasets.LoadFile(path, FieldOptions([| "question" |], "ignored", AnswerFrom.FinalAnswerList, "id"))
                Expect.equal (triples r) [ "11", "q1", "$69$, $84$"; "12", "q2", "$\\frac{1}{2}$" ] "list column"
                let asText = write dir "olympiad-text.parquet" [ ({ question = "q"; final_answer = "['$69$', \"$84$\"]" } : OlympiadTextRow) ]
                let r = Datasets.LoadFile(asText, FieldOptions([| "question" |], "ignored", AnswerFrom.FinalAnswerList))
                Expect.equal (triples r) [ "olympiad-text-1", "q", "$69$, $84$" ] "a list written in a string column"
                let gsm = write dir "gsm.parquet" [ ({ problem = "q"; answer = "1" } : GsmRow) ]
                failsWith (fun () -> box (Datasets.LoadFile(gsm, FieldOptions([| "problem" |], "answer", AnswerFrom.FinalAnswerList))))
                    [ gsm; "missing column 'final_answer'"; "(columns present: problem, answer)" ])
        }
        test "a missing column names it and lists the columns present" {
            inFolder (fun dir ->
                let path = write dir "m.parquet" mathRows
                failsWith (fun () -> box (Datasets.LoadFile(path, FieldOptions([| "question" |], "reference"))))
                    [ path; "missing column 'reference'"; "(columns present: id, question, answer, solution)" ]
                failsWith (fun () -> box (Datasets.LoadFile(path, FieldOptions([| "problem"; "prompt" |], "answer"))))
                    [ path; "missing column 'problem' or 'prompt'"; "id, question, answer, solution" ])
        }
        test "a null answer is a bad row named by its number, or skipped and listed with skipBadRows" {
            inFolder (fun dir ->
                let path = write dir "m.parquet" mathRows
                let fields = FieldOptions([| "question" |], "answer", AnswerFrom.Answer, "id")
                failsWith (fun () -> box (Datasets.LoadFile(path, fields))) [ path + ": row 3: column 'answer' is null" ]
                let r = Datasets.LoadFile(path, fields, skipBadRows = true)
                Expect.equal (triples r) [ "m1", "1+1?", "2"; "m-2", "2+2?", "4" ] "the good rows"
                Expect.equal (List.ofSeq r.Skipped) [ path + ": row 3: column 'answer' is null" ] "the skipped row listed")
        }
        test "a file whose every row is bad is an error even when skipping" {
            inFolder (fun dir ->
                let path = write dir "m.parquet" [ mathRows.[2] ]
                failsWith (fun () -> box (Datasets.LoadFile(path, FieldOptions([| "question" |], "answer"), skipBadRows = true)))
                    [ path; "every row was bad"; "row 1" ])
        }
        test "a garbage file named .parquet is a DatasetException naming the file" {
            inFolder (fun dir ->
                let path = Path.Combine(dir, "x.parquet")
                File.WriteAllText(path, "{\"question\": \"this is JSON, not Parquet\", \"answer\": \"1\"}\n")
                failsWith (fun () -> box (Datasets.LoadFile(path, FieldOptions([| "question" |], "answer")))) [ path; "Parquet" ]
                File.WriteAllBytes(path, [||])
                failsWith (fun () -> box (Datasets.LoadFile(path, FieldOptions([| "question" |], "answer")))) [ path; "Parquet" ])
        }
        test "an empty (0-row) parquet file is an error" {
            inFolder (fun dir ->
                let path = write dir "empty.parquet" ([] : MathRow list)
                failsWith (fun () -> box (Datasets.LoadFile(path, FieldOptions([| "question" |], "answer")))) [ path; "no rows" ])
        }
        test "numeric answer columns (double, int, float) read as numbers that grade equal to the plain number" {
            inFolder (fun dir ->
                let path = write dir "numbers.parquet" [ ({ question = "q1"; answer = 145.0; count = 17; ratio = 2.5f } : NumericRow) ]
                let read column = (Datasets.LoadFile(path, FieldOptions([| "question" |], column))).Problems.[0].Answer
                for column, prediction in [ "answer", "145.0"; "count", "\\boxed{17}"; "ratio", "2.50" ] do
                    let answer = read column
                    let struct (_, ok) = MathGrader.Grade(prediction, answer)
                    Expect.isTrue ok (sprintf "column %s: '%s' against '%s'" column prediction answer)
                let struct (_, wrong) = MathGrader.Grade("146", read "answer")
                Expect.isFalse wrong "146 is not 145")
        }
        test "a question column of numbers names the row, the column, its type and the type expected" {
            inFolder (fun dir ->
                let path = write dir "q.parquet" [ ({ question = 17; answer = "3" } : NumericQuestionRow) ]
                failsWith (fun () -> box (Datasets.LoadFile(path, FieldOptions([| "question" |], "answer"))))
                    [ path + ": row 1: column 'question' is a number (17), expected a string" ])
        }
        test "a question template joins columns; a template column the file lacks is an error naming it and the template" {
            inFolder (fun dir ->
                let path = write dir "svamp.parquet" [ ({ ID = "chal-1"; Body = "A box holds 145 apples."; Question = "How many?"; Answer = 145.0 } : SvampRow) ]
                let fields template = FieldOptions.FromTemplate(QuestionTemplate.Parse template, "Answer", AnswerFrom.Answer, "ID")
                Expect.equal (triples (Datasets.LoadFile(path, fields "{Body} {Question}"))) [ "chal-1", "A box holds 145 apples. How many?", "145" ] "row"
                failsWith (fun () -> box (Datasets.LoadFile(path, fields "{Body} {Query}")))
                    [ path; "missing column 'Query' named by the question template \"{Body} {Query}\""; "(columns present: ID, Body, Question, Answer)" ])
        }
    ]
