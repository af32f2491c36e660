/// BIG-Bench Hard: the 27 files load, targets score against themselves and a shuffled target scores wrong.
module SimKO.Data.Tests.BbhTests

open System
open Expecto
open SimKO.Data
open SimKO.Data.Answers
open SimKO.Data.Datasets
open SimKO.Data.Tests.Support

let private load (root: string) (name: string) = DatasetLoader.Load(name, LoadOptions(Root = root))

/// The completion a chain-of-thought model writes (BBH's own format): "... So the answer is X."
let private cot (target: string) = sprintf "Let's think step by step.\nWe check each option in turn.\nSo the answer is %s." target

let tests =
    testList "bbh" [
        datasetTest "every one of the 27 files loads: 6,511 rows in all" (fun root ->
            let d = load root "bbh"
            Expect.equal d.Problems.Count 6511 "rows"
            Expect.equal DatasetLoader.BbhTasks.Count 27 "tasks"
            for task in DatasetLoader.BbhTasks do
                let one = load root ("bbh/" + task)
                Expect.isGreaterThan one.Problems.Count 100 (sprintf "%s rows" task)
                Expect.isTrue (one.Problems |> Seq.forall (fun p -> p.Metadata.["task"] = task)) (sprintf "%s task metadata" task)
            let sizes = DatasetLoader.BbhTasks |> Seq.sumBy (fun t -> (load root ("bbh/" + t)).Problems.Count)
            Expect.equal sizes 6511 "per-task rows add up")

        datasetTest "each task's targets score correct against themselves" (fun root ->
            let d = load root "bbh"
            for p in d.Problems do
                Expect.isTrue (d.Verifier.Score(p, cot p.Answer) = 1.0) (sprintf "%s: 'the answer is %s'" p.Id p.Answer)
                if not (p.Answer.Contains "{" || p.Answer.Contains "}") then
                    Expect.isTrue (d.Verifier.Score(p, sprintf "\\boxed{%s}" p.Answer) = 1.0) (sprintf "%s: boxed %s" p.Id p.Answer))

        datasetTest "a shuffled target (another example's, different) scores wrong" (fun root ->
            let d = load root "bbh"
            let rng = Random(7)
            let mutable checkedCount = 0
            for task in d.Problems |> Seq.groupBy (fun p -> p.Metadata.["task"]) do
                let problems = snd task |> Seq.toArray
                let shuffled = problems |> Array.map (fun p -> p.Answer) |> Array.sortBy (fun _ -> rng.Next())
                for p, other in Array.zip problems shuffled do
                    if BbhVerifier.Normalize other <> BbhVerifier.Normalize p.Answer then
                        checkedCount <- checkedCount + 1
                        Expect.isFalse (d.Verifier.Score(p, cot other) = 1.0) (sprintf "%s: target %A, shuffled %A accepted" p.Id p.Answer other)
            Expect.isGreaterThan checkedCount 4000 "shuffled targets checked")

        test "multiple-choice letters match with or without parentheses and option text" {
            for answer in [ "(B)"; "B"; "b"; "B)"; "(B) Frankenstein"; "(b)"; "Option (B)"; "B." ] do
                Expect.isTrue (BbhVerifier.Matches(answer, "(B)")) (sprintf "%A for (B)" answer)
            for answer in [ "(C)"; "C"; "Bob"; "" ] do
                Expect.isFalse (BbhVerifier.Matches(answer, "(B)")) (sprintf "%A for (B)" answer)
        }
        test "True/False, yes/no and valid/invalid ignore case; words must match exactly" {
            Expect.isTrue (BbhVerifier.Matches("true", "True")) "true"
            Expect.isFalse (BbhVerifier.Matches("False", "True")) "false"
            Expect.isTrue (BbhVerifier.Matches("YES", "yes")) "yes"
            Expect.isFalse (BbhVerifier.Matches("valid", "invalid")) "valid vs invalid"
            Expect.isTrue (BbhVerifier.Matches("barn  damp dot", "barn damp dot")) "spaces collapse"
            Expect.isFalse (BbhVerifier.Matches("damp barn dot", "barn damp dot")) "order matters"
        }
        test "numbers compare as numbers and Dyck closings ignore spaces" {
            Expect.isTrue (BbhVerifier.Matches("24.0", "24")) "24.0"
            Expect.isTrue (BbhVerifier.Matches("\u221250", "-50")) "unicode minus"
            Expect.isFalse (BbhVerifier.Matches("-5", "-50")) "-5"
            Expect.isTrue (BbhVerifier.Matches("]]>", "] ] >")) "dyck"
            Expect.isFalse (BbhVerifier.Matches("] >", "] ] >")) "dyck short"
        }
        test "scores are averaged per task, each task counting once" {
            let p task = Problem("x", "", "(A)", Metadata = readOnlyDict [ "task", task ])
            let s = BbhScores.Summarize [ p "a", 1.0; p "a", 0.0; p "a", 1.0; p "a", 1.0; p "b", 0.0 ]
            Expect.equal s.PerTask.["a"] 0.75 "task a"
            Expect.equal s.PerTask.["b"] 0.0 "task b"
            Expect.equal s.Average 0.375 "mean of task means"
        }
    ]
