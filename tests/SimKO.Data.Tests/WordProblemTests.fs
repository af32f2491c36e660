/// The word-problem task: generated problems, their answers, samples, splits; graded by the math verifier.
module SimKO.Data.Tests.WordProblemTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data
open SimKO.Data.Tasks

let task = WordProblemTask()
let private payload (p: Problem) = p.Payload :?> WordProblemPayload

/// The chain's value computed independently with decimals.
let private chainValue (pl: WordProblemPayload) =
    pl.Steps |> Array.fold (fun (v: decimal) s ->
        match s.Op with
        | '+' -> v + decimal s.Operand
        | '-' -> v - decimal s.Operand
        | '*' -> v * decimal s.Operand
        | _ -> v / decimal s.Operand) (decimal pl.Start)

type Seed = Seed of int
type Generators =
    static member Seed() : Arbitrary<Seed> = Gen.choose (0, 1_000_000) |> Gen.map Seed |> Arb.fromGen

let private config = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<Generators> ]; maxTest = 100 }

let tests =
    testList "word problems" [
        testPropertyWithConfig config "the answer is the chain's value; correct samples pass, wrong ones fail; all within alphabet and lengths" <| fun (Seed seed) ->
            let rng = Random seed
            for p in task.Generate(Split.Train, seed, 3) do
                let pl = payload p
                let value = chainValue pl
                let answer = decimal pl.Answer.Num / decimal pl.Answer.Den
                Expect.isTrue (abs (answer - value) < 1e-9M) (sprintf "%s: %M vs %M" p.Question answer value)
                let prompt = task.Prompt p
                Expect.isLessThanOrEqual prompt.Length task.MaxPromptLength "prompt length"
                Expect.isTrue (prompt |> Seq.forall (fun c -> task.Alphabet.Contains c)) (sprintf "prompt chars: %s" prompt)
                for _ in 1 .. 3 do
                    let correct = task.SampleCorrect(p, rng)
                    let wrong = task.SampleWrong(p, rng)
                    Expect.equal (task.Verifier.Score(p, correct)) 1.0 (sprintf "%s | correct %s" p.Question correct)
                    Expect.equal (task.Verifier.Score(p, wrong)) 0.0 (sprintf "%s | wrong %s" p.Question wrong)
                    for r in [ correct; wrong ] do
                        Expect.isLessThanOrEqual r.Length task.MaxResponseLength (sprintf "length of %s" r)
                        Expect.isTrue (r |> Seq.forall (fun c -> task.Alphabet.Contains c)) (sprintf "chars of %s" r)

        test "train and test never share a question, and generation is deterministic" {
            let train = task.Generate(Split.Train, 1, 3000) |> Seq.map (fun p -> p.Question) |> Set.ofSeq
            let test = task.Generate(Split.Test, 2, 300) |> Seq.map (fun p -> p.Question) |> Set.ofSeq
            Expect.equal train.Count 3000 "distinct train questions"
            Expect.equal test.Count 300 "distinct test questions"
            Expect.isEmpty (Set.intersect train test) "disjoint"
            let again = task.Generate(Split.Test, 2, 300) |> Seq.map (fun p -> p.Question) |> Set.ofSeq
            Expect.equal again test "same seed, same problems"
            Expect.equal (task.Generate(Split.Test, 0).Count) 200 "default test count"
        }
        test "fraction answers are accepted as \\frac, a/b and decimal; a bare number without a box is not" {
            let p = task.Generate(Split.Train, 5, 2000) |> Seq.find (fun p -> (payload p).Answer.Den = 4L)
            let a = (payload p).Answer
            let dec = (decimal a.Num / 4M).ToString(Globalization.CultureInfo.InvariantCulture)
            for form in [ sprintf "\\boxed{\\frac{%d}{4}}" a.Num; sprintf "\\boxed{%d/4}" a.Num; sprintf "\\boxed{%s}" dec ] do
                Expect.equal (task.Verifier.Score(p, form)) 1.0 form
            Expect.equal (task.Verifier.Score(p, dec)) 0.0 "no box"
        }
        test "more steps, longer chains; invalid settings list every problem" {
            let long = WordProblemTask(WordProblemSettings(Steps = 4))
            for p in long.Generate(Split.Test, 0, 20) do
                Expect.equal (payload p).Steps.Length 4 "four steps"
            let bad = WordProblemSettings(Steps = 0, MaxNumber = 1, TestPerMille = 1000)
            Expect.equal (bad.Validate().Count) 3 "three problems"
        }
    ]
