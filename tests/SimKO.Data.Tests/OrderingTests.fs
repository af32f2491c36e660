/// The logic ordering puzzle: generator and verifier properties.
module SimKO.Data.Tests.OrderingTests

open System
open System.Text.RegularExpressions
open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data
open SimKO.Data.Tasks

let private payload (p: Problem) = p.Payload :?> OrderingPayload

let rec private permutations (items: char list) : char list list =
    match items with
    | [] -> [ [] ]
    | _ -> [ for x in items do for rest in permutations (List.filter ((<>) x) items) -> x :: rest ]

/// Puzzle settings across the difficulty knobs.
type PuzzleSettings = PuzzleSettings of OrderingSettings
type Seed = Seed of int

type Generators =
    static member PuzzleSettings() : Arbitrary<PuzzleSettings> =
        gen {
            let! items = Gen.choose (3, 6)
            let! minS = Gen.choose (1, 2)
            let! extra = Gen.choose (0, if items = 3 then 3 else 6)
            let! positions = Gen.elements [ true; false ]
            let! adjacency = Gen.elements [ true; false ]
            return PuzzleSettings(OrderingSettings(Items = items, MinSolutions = minS, MaxSolutions = minS + extra,
                                                   PositionConstraints = positions, AdjacencyConstraints = adjacency))
        } |> Arb.fromGen
    static member Seed() : Arbitrary<Seed> = Gen.choose (0, 1_000_000) |> Gen.map Seed |> Arb.fromGen

let private config = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<Generators> ]; maxTest = 150 }

let private defaultTask = OrderingPuzzleTask()

let tests =
    testList "ordering puzzle" [
        testPropertyWithConfig config "the verifier accepts exactly the puzzle's solutions among all orders, and their number is within the knobs" <| fun (PuzzleSettings s) (Seed seed) ->
            let t = OrderingPuzzleTask s
            let p = t.Generate(Split.Train, seed, 1).[0]
            let pl = payload p
            let letters = [ for i in 0 .. s.Items - 1 -> char (int 'A' + i) ]
            let accepted =
                permutations letters |> List.map (fun l -> String(Array.ofList l))
                |> List.filter (fun o -> t.Grade(p, o).Correct) |> List.sort
            Expect.sequenceEqual accepted (Array.sort pl.Solutions) "accepted orders = solutions"
            Expect.isTrue (pl.Solutions.Length >= s.MinSolutions && pl.Solutions.Length <= s.MaxSolutions) (sprintf "%d solutions" pl.Solutions.Length)
            let kinds = pl.Constraints |> Array.map (fun c -> c.Kind) |> Set.ofArray
            Expect.isTrue (s.PositionConstraints || not (kinds.Contains '@' || kinds.Contains '!')) "no position constraints when off"
            Expect.isTrue (s.AdjacencyConstraints || not (kinds.Contains '~')) "no adjacency constraints when off"

        testPropertyWithConfig config "every constraint removes solutions (none is redundant when added) and the prompt lists them" <| fun (Seed seed) ->
            let p = defaultTask.Generate(Split.Train, seed, 1).[0]
            let pl = payload p
            let prompt = defaultTask.Prompt p
            Expect.isTrue (Regex.IsMatch(prompt, "^5:([A-E][<~][A-E]|[A-E][@!][1-5])(,([A-E][<~][A-E]|[A-E][@!][1-5]))*=$")) prompt
            Expect.isLessThanOrEqual prompt.Length defaultTask.MaxPromptLength "prompt length"
            Expect.isTrue (prompt |> Seq.forall (fun c -> defaultTask.Alphabet.Contains c)) "prompt alphabet"
            Expect.equal (prompt.Split(',').Length) pl.Constraints.Length "one entry per constraint"
            // Replay the constraints in order: each must remove at least one order.
            let positions (o: string) = [| for item in 0 .. 4 -> o.IndexOf(char (int 'A' + item)) |]
            let mutable alive = permutations [ 'A' .. 'E' ] |> List.map (fun l -> String(Array.ofList l))
            for c in pl.Constraints do
                let kept = alive |> List.filter (fun o -> c.Holds(ReadOnlySpan(positions o)))
                Expect.isLessThan kept.Length alive.Length (sprintf "%O removes an order" c)
                alive <- kept
            Expect.sequenceEqual (List.sort alive) (Array.sort pl.Solutions) "what remains is the solution set"

        testPropertyWithConfig config "sampled answers: correct accepted, wrong rejected; broken forms rejected with a reason" <| fun (Seed seed) ->
            let rng = Random seed
            let p = defaultTask.Generate(Split.Test, seed, 1).[0]
            let correct = defaultTask.SampleCorrect(p, rng)
            let wrong = defaultTask.SampleWrong(p, rng)
            Expect.isTrue (defaultTask.Grade(p, correct).Correct) correct
            let g = defaultTask.Grade(p, wrong)
            Expect.isFalse g.Correct wrong
            Expect.stringStarts g.Reason "breaks " "a wrong order names a broken constraint"
            Expect.equal wrong.Length defaultTask.MaxResponseLength "well-formed"
            let dup = correct.Substring(0, 4) + string correct.[0]
            for bad, reason in [ dup, "appears twice"; correct.Substring(0, 4), "expected an order of 5"; correct + "A", "expected an order of 5"
                                 correct.ToLowerInvariant(), "is not one of the items"; correct.Substring(0, 4) + "F", "is not one of the items"; "", "empty" ] do
                let g = defaultTask.Grade(p, bad)
                Expect.isFalse g.Correct bad
                Expect.stringContains g.Reason reason (sprintf "reason for %A" bad)

        test "train and test never share a puzzle; generation is deterministic" {
            let train = defaultTask.Generate(Split.Train, 0, 2000) |> Seq.map (fun p -> p.Question) |> Set.ofSeq
            let test = defaultTask.Generate(Split.Test, 0, 200) |> Seq.map (fun p -> p.Question) |> Set.ofSeq
            Expect.equal test.Count 200 "test puzzles"
            Expect.isEmpty (Set.intersect train test) "disjoint"
            Expect.equal (defaultTask.Generate(Split.Test, 0, 200) |> Seq.map (fun p -> p.Question) |> Set.ofSeq) test "deterministic"
        }
        test "invalid settings list every problem" {
            let bad = OrderingSettings(Items = 9, MinSolutions = 0, MaxSolutions = -1, TestPerMille = 0)
            Expect.equal (bad.Validate().Count) 4 "four problems"
        }
    ]
