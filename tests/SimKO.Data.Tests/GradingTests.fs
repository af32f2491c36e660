/// The `simko grade` file format and the benchmark's corpus (its speed is measured by the command, not here).
module SimKO.Data.Tests.GradingTests

open System.IO
open System.Text.Json
open Expecto
open SimKO.Data
open SimKO.Data.Answers
open SimKO.Data.Grading
open SimKO.Data.Tests.Support

let private run (input: string) (verifier: IVerifier) =
    use reader = new StringReader(input)
    use writer = new StringWriter()
    let summary = GradeJsonl.Run(reader, writer, verifier, "preds.jsonl")
    summary, writer.ToString().Split('\n', System.StringSplitOptions.RemoveEmptyEntries) |> Array.map JsonDocument.Parse

let tests =
    testList "grading" [
        test "each line comes back unchanged with extracted and correct added" {
            let input =
                String.concat "\n"
                    [ """{"id": 1, "prediction": "So $\\boxed{\\frac{1}{2}}$.", "reference": "0.5"}"""
                      ""
                      """{"prediction": "42", "reference": 42}"""
                      """{"prediction": "no idea, sorry, this is a long ramble without any marker at all that goes on and on and on and on and on", "reference": "7"}"""
                      """{"prediction": "\\boxed{84, 69}", "reference": ["69", "84"]}"""
                      """{"prediction": "\\boxed{60 km/h}", "reference": "60", "unit": "km/h"}""" ]
            let summary, rows = run input MathVerifier.Default
            Expect.equal summary (GradeSummary(5, 4)) "summary"
            let get (i: int) (f: string) = rows.[i].RootElement.GetProperty f
            Expect.equal ((get 0 "id").GetInt32()) 1 "other fields kept"
            Expect.equal ((get 0 "extracted").GetString()) "\\frac{1}{2}" "extracted"
            Expect.isTrue ((get 0 "correct").GetBoolean()) "correct"
            Expect.equal ((get 1 "extracted").GetString()) "42" "bare answer"
            Expect.equal ((get 2 "extracted").ValueKind) JsonValueKind.Null "nothing extracted"
            Expect.isFalse ((get 2 "correct").GetBoolean()) "not correct"
            Expect.isTrue ((get 3 "correct").GetBoolean()) "a list reference is a multiple answer"
            Expect.isTrue ((get 4 "correct").GetBoolean()) "unit"
        }
        test "the BBH grader through the same format" {
            let summary, _ = run """{"prediction": "So the answer is (B).", "reference": "(B)"}""" BbhVerifier.Default
            Expect.equal summary.Correct 1 "correct"
        }
        test "bad lines name the input, the line and the field" {
            let cases =
                [ "{\"prediction\": \"1\"}", [ "preds.jsonl:1:"; "'reference' is missing"; "prediction" ]
                  "{\"reference\": \"1\"}", [ "preds.jsonl:1:"; "'prediction' is missing" ]
                  "\n{\"prediction\": \"1\", \"reference\": {}}", [ "preds.jsonl:2:"; "'reference' is an object" ]
                  "{\"prediction\": [1], \"reference\": \"1\"}", [ "'prediction' is an array"; "expected a string" ]
                  "[1]", [ "expected a JSON object" ]
                  "{oops", [ "preds.jsonl:1:"; "not valid JSON" ] ]
            for input, fragments in cases do
                let e = expectDataError (fun () -> run input MathVerifier.Default |> ignore)
                expectMentions e.Message fragments
        }
        test "the benchmark corpus grades as designed: each typical answer verbatim and rewritten right, one wrong" {
            let cases = GradingBenchmark.TypicalCases()
            Expect.isGreaterThanOrEqual cases.Count 90 "cases"
            for i, (p, c) in Seq.indexed cases do
                let expected = i % 3 <> 2
                Expect.equal (MathVerifier.Default.Score(p, c) = 1.0) expected (sprintf "%s against %s" (c.Substring(c.Length - 40)) p.Answer)
        }
    ]
