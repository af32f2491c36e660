/// The program-synthesis task (the code task at CPU scale): every answer is verified by running it in the
/// sandbox; sampled correct answers (in several written forms) are judged correct and sampled wrong ones
/// wrong; the splits are disjoint by function and deterministic; every character is in the alphabet.
module SimKO.Data.Tests.ProgramTaskTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data.Tasks
open SimKO.Data.Tests.SandboxFixture

let private taskSettings = ProgramSettings(TrainProblems = 400, TestProblems = 60)
/// The task without a sandbox (generation only); judging tests build one on the shared pool.
let private generator = lazy (new ProgramTask(taskSettings))
let private judged () = new ProgramTask(taskSettings, pool ())

/// The FsCheck seed: fixed; SIMKO_PROPERTY_SEED=<n> explores others (as in tests/Properties).
let private seed =
    match Environment.GetEnvironmentVariable "SIMKO_PROPERTY_SEED" with
    | null | "" -> 20251123UL
    | s -> uint64 s

let private config n = { FsCheckConfig.defaultConfig with maxTest = n; replay = Some(seed, 0x9E3779B97F4A7C15UL, None) }

/// A batch of problems (train and test together) and a seed for the answers: judged in one call.
type Batch = { Indices: int[]; Seed: int }

type private Arbs =
    static member Batch() : Arbitrary<Batch> =
        Arb.fromGen (gen {
            let! indices = Gen.arrayOfLength 40 (Gen.choose (0, Int32.MaxValue))
            let! s = Gen.choose (0, Int32.MaxValue)
            return { Indices = indices; Seed = s } })

let private batchConfig n = { config n with arbitrary = [ typeof<Arbs> ] }

let private problemsOf (t: ProgramTask) (b: Batch) =
    b.Indices |> Array.map (fun i -> let i = i % (t.Train.Count + t.Test.Count) in if i < t.Train.Count then t.Train.[i] else t.Test.[i - t.Train.Count])

let tests =
    testList "program (code task)" [
        testCase "train and test are disjoint by function, of the asked sizes, and the same for the same settings" <| fun () ->
            let t = generator.Value
            Expect.equal (t.Train.Count, t.Test.Count) (400, 60) "sizes"
            let trainFunctions = t.Train |> Seq.map ProgramTask.FunctionKey |> Set.ofSeq
            Expect.equal trainFunctions.Count 400 "one problem per function"
            Expect.isTrue (t.Test |> Seq.forall (fun p -> not (trainFunctions.Contains(ProgramTask.FunctionKey p)))) "no test function in train"
            let trainPrompts = t.Train |> Seq.map t.Prompt |> Set.ofSeq
            Expect.isTrue (t.Test |> Seq.forall (fun p -> not (trainPrompts.Contains(t.Prompt p)))) "no test prompt in train"
            use again = new ProgramTask(taskSettings)
            Expect.sequenceEqual (again.Train |> Seq.map again.Prompt) (t.Train |> Seq.map t.Prompt) "deterministic"
            use other = new ProgramTask(ProgramSettings(TrainProblems = 400, TestProblems = 60, Seed = 7))
            Expect.isFalse (Seq.forall2 (fun a b -> t.Prompt a = other.Prompt b) t.Train other.Train) "another seed draws others"
            let testFunctions = t.Test |> Seq.map ProgramTask.FunctionKey |> Set.ofSeq
            Expect.isTrue (other.Train |> Seq.forall (fun p -> not (testFunctions.Contains(ProgramTask.FunctionKey p)))) "the hash split holds across seeds"

        testPropertyWithConfig (batchConfig 40) "prompts, correct and wrong answers use only the alphabet and fit the length bounds" (fun (b: Batch) ->
            let t = generator.Value
            let rng = Random b.Seed
            for p in problemsOf t b do
                let prompt = t.Prompt p
                Expect.isLessThanOrEqual prompt.Length t.MaxPromptLength prompt
                Expect.isTrue (prompt |> Seq.forall t.Alphabet.Contains) prompt
                for answer in [ t.SampleCorrect(p, rng); t.SampleWrong(p, rng) ] do
                    Expect.isLessThanOrEqual answer.Length t.MaxAnswerLength answer
                    Expect.isTrue (answer |> Seq.forall ProgramTask.AnswerChars.Contains) answer)

        testPropertyWithConfig (batchConfig 5) "sampled correct answers are judged correct and sampled wrong ones wrong, by running them" (fun (b: Batch) ->
            use t = judged ()
            let rng = Random b.Seed
            let ps = problemsOf t b
            let items = [| for p in ps do yield struct (p, t.SampleCorrect(p, rng)); yield struct (p, t.SampleWrong(p, rng)) |]
            let js = t.JudgeMany items
            for i in 0 .. items.Length - 1 do
                let struct (p, a) = items.[i]
                Expect.equal js.[i].Correct (i % 2 = 0) (sprintf "%s %s -> %s" (t.Prompt p) a js.[i].Reason))

        testCase "several written forms of one function are all correct; others are wrong, with the values they computed as their vote" <| fun () ->
            use t = judged ()
            let p = ProgramProblem("t", 0, 2, 1, [| 1; 2; 4 |], [| 0; 7 |])
            Expect.equal (t.Prompt p) "f(1)=3 f(2)=5 f(4)=9:" "prompt"
            let answers = [| "2*x+1"; "x+x+1"; "1+2*x"; "x*2+1"; " (2*x+1) "; "(2*x+1)*2-(2*x+1)"; "x*x-x*x+x+x+1"
                             "2*x"; "x+2"; "2*x+1+"; "x*x+1"; "9**9**9"; "__import__('os')"; "" |]
            let js = t.JudgeMany(answers |> Array.map (fun a -> struct (p, a)))
            let correct = js |> Array.map (fun j -> j.Correct)
            Expect.sequenceEqual correct [| true; true; true; true; true; true; true; false; false; false; false; false; false; false |]
                                 (String.Join("\n", Array.map2 (fun a (j: SimKO.Data.Tasks.Judgement) -> a + " -> " + j.Reason) answers js))
            Expect.equal js.[0].Vote "3 5 9 1 15" "a correct answer votes the function's values"
            Expect.equal js.[1].Vote js.[0].Vote "equivalent answers vote together"
            Expect.equal js.[7].Vote "2 4 8 0 14" "a wrong answer votes the values it computed"
            Expect.stringContains js.[9].Reason "SyntaxError" "malformed"
            Expect.equal js.[11].Reason "timed out" "a huge power runs into the time limit"
            Expect.stringContains js.[12].Reason "not allowed" "other characters are refused without running"
            Expect.equal js.[13].Reason "empty answer" "empty"
            Expect.isTrue (t.Judge(p, "1+x*2").Correct) "Judge one answer"

        testCase "a correct answer can be one the sampler never writes: the verdict comes from running it" <| fun () ->
            use t = judged ()
            let ps = t.Test |> Seq.take 20 |> Array.ofSeq
            let rng = Random 5
            let unusual = ps |> Array.map (fun p -> let a = t.SampleCorrect(p, rng) in struct (p, sprintf "(%s)*3-(%s)-(%s)" a a a))
            let js = t.JudgeMany unusual
            Expect.all js (fun j -> j.Correct) (sprintf "%A" (js |> Array.map (fun j -> j.Reason)))

        testCase "several correct answers exist per problem" <| fun () ->
            let t = generator.Value
            let rng = Random 11
            let distinct = t.Train |> Seq.take 100 |> Seq.map (fun p -> Seq.init 30 (fun _ -> t.SampleCorrect(p, rng)) |> Seq.distinct |> Seq.length)
            Expect.isGreaterThanOrEqual (Seq.min distinct) 2 "at least two written forms of every function"

        testCase "the shown points are 0, 1, …, examples − 1 and the hidden ones distinct points past them (or all drawn when shown_from_zero is off)" <| fun () ->
            let t = generator.Value
            for p in Seq.append t.Train t.Test do
                Expect.sequenceEqual p.Shown [| 0; 1; 2 |] (t.Prompt p)
                Expect.equal p.Hidden.Length 2 "hidden tests"
                Expect.equal (Array.distinct p.Hidden).Length 2 "distinct hidden points"
                Expect.all p.Hidden (fun x -> x >= 3 && x <= 9) (sprintf "%A" p.Hidden)
            Expect.isGreaterThan (t.Train |> Seq.map (fun p -> p.Hidden.[0], p.Hidden.[1]) |> Seq.distinct |> Seq.length) 10 "hidden points vary"
            use drawn = new ProgramTask(ProgramSettings(TrainProblems = 400, TestProblems = 60, ShownFromZero = false))
            Expect.isGreaterThan (drawn.Train |> Seq.map (fun p -> p.Shown.[0], p.Shown.[1], p.Shown.[2]) |> Seq.distinct |> Seq.length) 10 "shown points drawn"
            for p in drawn.Train do
                let all = Array.append p.Shown p.Hidden
                Expect.equal (Array.distinct all).Length 5 "five distinct points"
                Expect.all all (fun x -> x >= 0 && x <= 9) (sprintf "%A" all)

        testCase "warm-start draws are never test functions, reach train functions beyond the fixed train problems, and keep a ≤ max_square" <| fun () ->
            let t = generator.Value
            let rng = Random 3
            let draws = Array.init 4000 (fun _ -> t.DrawTraining(rng, 3))
            let testFunctions = t.Test |> Seq.map ProgramTask.FunctionKey |> Set.ofSeq
            // the split's hash, recomputed: 10 % of functions are test ones, whatever the seed
            Expect.all draws (fun p -> not (TaskSplit.IsTest(ProgramTask.FunctionKey p, 100))) "no test-side function"
            Expect.all draws (fun p -> not (testFunctions.Contains(ProgramTask.FunctionKey p))) "none of the test problems' functions"
            let trainFunctions = t.Train |> Seq.map ProgramTask.FunctionKey |> Set.ofSeq
            let beyond = draws |> Seq.map ProgramTask.FunctionKey |> Seq.filter (trainFunctions.Contains >> not) |> Seq.distinct |> Seq.length
            Expect.isGreaterThan beyond 500 "functions the 400 fixed train problems lack"
            Expect.all draws (fun p -> p.A >= 0 && p.A <= 3 && abs p.B <= 9 && abs p.C <= 9 && (p.A <> 0 || p.B <> 0)) "in the function family"
            Expect.isTrue (draws |> Array.exists (fun p -> p.A = 3)) "a reaches max_square"
            let lines = Array.init 500 (fun _ -> t.DrawTraining(rng, 0))
            Expect.all lines (fun p -> p.A = 0 && p.B <> 0) "max_square 0: lines"
            Expect.throws (fun () -> t.DrawTraining(rng, 4) |> ignore) "past max_square"
            Expect.throws (fun () -> t.DrawTraining(rng, -1) |> ignore) "negative"

        testCase "bad settings are reported all at once" <| fun () ->
            let message =
                try new ProgramTask(ProgramSettings(MaxCoefficient = 12, Examples = 1, HiddenTests = 1)) |> ignore; "no error"
                with :? ArgumentException as e -> e.Message
            Expect.stringContains message "max_coefficient must be 1..9" message
            Expect.stringContains message "examples + hidden_tests must be >= 3" message
    ]
