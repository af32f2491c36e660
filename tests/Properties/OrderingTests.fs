/// The ordering puzzle (the built-in logic task): generator and verifier agree on every puzzle, the
/// splits are disjoint and deterministic, and answers that break a rule are rejected.
module SimKO.Tests.OrderingTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data.Tasks

let private settings = OrderingSettings(TrainProblems = 600, TestProblems = 100)
let private task = lazy OrderingPuzzle(settings)

open SimKO.Tests.Generators

let private config = Generators.config 300

let private problem (p: Picked) = pick task.Value.Train task.Value.Test p

/// Every arrangement of the items, by brute force.
let private allArrangements (n: int) =
    TaskSplit.Permutations n |> Seq.map (fun o -> String(o |> Array.map (fun i -> char (int 'A' + i)))) |> Array.ofSeq

let tests =
    testList "order (logic task)" [
        testCase "train and test are disjoint, of the asked sizes, and the same for the same settings" <| fun () ->
            let t = task.Value
            Expect.equal (t.Train.Count, t.Test.Count) (600, 100) "sizes"
            let trainPrompts = t.Train |> Seq.map t.Prompt |> Set.ofSeq
            Expect.equal trainPrompts.Count 600 "train problems are distinct"
            Expect.isTrue (t.Test |> Seq.forall (fun p -> not (trainPrompts.Contains(t.Prompt p)))) "disjoint"
            let again = OrderingPuzzle(settings)
            Expect.sequenceEqual (again.Train |> Seq.map again.Prompt) (t.Train |> Seq.map t.Prompt) "deterministic"
        testCase "another seed draws other problems, still never a test problem in train" <| fun () ->
            let t = task.Value
            let other = OrderingPuzzle(OrderingSettings(TrainProblems = 600, TestProblems = 100, Seed = 99))
            let testPrompts = t.Test |> Seq.map t.Prompt |> Set.ofSeq
            Expect.isFalse (Seq.forall2 (fun a b -> t.Prompt a = other.Prompt b) t.Train other.Train) "different draws"
            Expect.isTrue (other.Train |> Seq.forall (fun p -> not (testPrompts.Contains(other.Prompt p)))) "hash split holds across seeds"
        testPropertyWithConfig config "the listed solutions are exactly the arrangements the verifier accepts" (fun (p: Picked) ->
            let pr = problem p
            let accepted = allArrangements pr.Items |> Array.filter (fun a -> isNull (OrderingPuzzle.Check(pr, a)))
            Expect.sequenceEqual accepted pr.Solutions "brute force = generator"
            Expect.isTrue (pr.Solutions.Length >= settings.MinSolutions && pr.Solutions.Length <= settings.MaxSolutions) "solution count in range")
        testPropertyWithConfig config "prompts fit the alphabet and the length bound" (fun (p: Picked) ->
            let t = task.Value
            let text = t.Prompt(problem p)
            Expect.isLessThanOrEqual text.Length t.MaxPromptLength text
            Expect.isTrue (text |> Seq.forall (fun c -> t.Alphabet.Contains c)) text)
        testPropertyWithConfig config "a sampled wrong answer is a permutation that breaks a rule" (fun (p: Picked) ->
            let pr = problem p
            let w = task.Value.SampleWrong(pr, Random p.Seed)
            let why = OrderingPuzzle.Check(pr, w)
            Expect.isNotNull why w
            Expect.stringStarts why "breaks" w)
        testPropertyWithConfig config "mutations of a correct answer that break a rule are rejected" (fun (p: Picked) ->
            let pr = problem p
            let t = task.Value
            let rng = Random p.Seed
            let good = t.SampleCorrect(pr, rng)
            Expect.isTrue (t.Judge(pr, good).Correct) good
            let i, j = rng.Next pr.Items, rng.Next pr.Items
            let dup = good.Substring(0, i) + string good.[j] + good.Substring(i + 1)
            if i <> j then Expect.stringContains (OrderingPuzzle.Check(pr, dup)) "twice" dup
            Expect.isFalse (t.Judge(pr, good.Substring 1).Correct) "a missing item"
            Expect.isFalse (t.Judge(pr, good + "A").Correct) "an extra item"
            let outside = good.Substring(0, i) + string (char (int 'A' + pr.Items)) + good.Substring(i + 1)
            Expect.stringContains (OrderingPuzzle.Check(pr, outside)) "not one of the items" outside
            // swapping two items gives another solution or a rejected answer, never a false accept
            let chars = good.ToCharArray()
            let tmp = chars.[i]
            chars.[i] <- chars.[j]
            chars.[j] <- tmp
            let swapped = String chars
            Expect.equal (t.Judge(pr, swapped).Correct) (Array.contains swapped pr.Solutions) swapped)
        testCase "every constraint kind is checked" <| fun () ->
            let pr = OrderingProblem("x", 3, [| OrderConstraint('<', 0, 2, 0); OrderConstraint('~', 0, 1, 0); OrderConstraint('!', 1, -1, 3) |],
                                     [| "ABC"; "BAC" |])
            for answer, expected in [ "ABC", true; "BAC", true; "ACB", false; "CAB", false; "CBA", false; "BCA", false; "", false; "AB", false; "ABB", false ] do
                Expect.equal (isNull (OrderingPuzzle.Check(pr, answer))) expected (sprintf "'%s'" answer)
            let pinned = OrderingProblem("y", 3, [| OrderConstraint('@', 2, -1, 1) |], [| "CAB"; "CBA" |])
            Expect.isNull (OrderingPuzzle.Check(pinned, "CBA")) "C at position 1"
            Expect.stringContains (OrderingPuzzle.Check(pinned, "ACB")) "C@1" "C not at 1"
        testCase "bad settings are reported all at once" <| fun () ->
            let message =
                try OrderingPuzzle(OrderingSettings(Items = 9, MinSolutions = 5, MaxSolutions = 2)) |> ignore; "no error"
                with :? ArgumentException as e -> e.Message
            Expect.stringContains message "items must be 3..7" "items"
            Expect.stringContains message "max_solutions" "solutions"
        testCase "a model of another task is refused: the tokenizers differ" <| fun () ->
            let order = SimKO.Host.Runs.TaskBinding.Create SimKO.Cli.RunSpec.Order
            let countdown = SimKO.Host.Runs.TaskBinding.Create SimKO.Cli.RunSpec.Countdown
            order.CheckTokenizer(order.Tokenizer, "order-model")
            let message =
                try order.CheckTokenizer(countdown.Tokenizer, "countdown-model"); "accepted" with :? ArgumentException as e -> e.Message
            Expect.stringContains message "countdown-model: its tokenizer is not the order task's" message
    ]
