/// Properties every built-in task shares, through the IBuiltinTask interface.
module SimKO.Data.Tests.TaskTests

open System
open Expecto
open SimKO.Data
open SimKO.Data.Tasks

let tests =
    testList "built-in tasks" [
        for name in [ "countdown"; "wordmath"; "order" ] do
            yield test (sprintf "%s: alphabet covers prompts and samples, lengths within the maxima, splits disjoint" name) {
                let t = BuiltinTasks.Create name
                Expect.equal t.Name name "name"
                Expect.equal (t.Alphabet |> Seq.distinct |> Seq.length) t.Alphabet.Length "no repeated character"
                let rng = Random 3
                let test = t.Generate(Split.Test, 0, 100)
                let train = t.Generate(Split.Train, 0, 500)
                Expect.isEmpty (Set.intersect (test |> Seq.map t.Prompt |> Set.ofSeq) (train |> Seq.map t.Prompt |> Set.ofSeq)) "disjoint prompts"
                for p in Seq.append test train do
                    let prompt = t.Prompt p
                    let correct = t.SampleCorrect(p, rng)
                    let wrong = t.SampleWrong(p, rng)
                    Expect.isLessThanOrEqual prompt.Length t.MaxPromptLength "prompt length"
                    for s in [ prompt; correct; wrong ] do
                        let outside = s |> Seq.filter (fun c -> not (t.Alphabet.Contains c)) |> Seq.distinct |> Seq.toList
                        Expect.isEmpty outside (sprintf "characters outside the alphabet in %A" s)
                    for r in [ correct; wrong ] do Expect.isLessThanOrEqual r.Length t.MaxResponseLength (sprintf "response %A" r)
                    Expect.equal (t.Verifier.Score(p, correct)) 1.0 (sprintf "correct %A" correct)
                    Expect.equal (t.Verifier.Score(p, wrong)) 0.0 (sprintf "wrong %A" wrong)
                    Expect.equal (t.Verifier.Score(p, "")) 0.0 "empty response"
            }
        yield test "unknown task names list the valid ones" {
            let message = try BuiltinTasks.Create "sudoku" |> ignore; "" with :? ArgumentException as e -> e.Message
            for n in BuiltinTasks.Names do Expect.stringContains message n "listed"
        }
        yield test "a task's verifier refuses another task's problem with a clear message" {
            let countdown = BuiltinTasks.Create "countdown"
            let order = BuiltinTasks.Create "order"
            let p = order.Generate(Split.Test, 0, 1).[0]
            let message = try countdown.Verifier.Score(p, "1+2") |> ignore; "" with :? ArgumentException as e -> e.Message
            Expect.stringContains message "not a Countdown problem" "message"
        }
    ]
