/// The arithmetic word problems (built-in task `wordmath`, graded by the math grader): the question
/// says what the operations are, the reference is their exact value, every sampled correct response
/// passes the grader and every wrong one fails, and an answer outside \boxed{} never counts.
module SimKO.Tests.WordProblemTests

open System
open System.Text.RegularExpressions
open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data.Tasks

let private settings = WordProblemSettings(TrainProblems = 600, TestProblems = 100)
let private task = lazy WordProblems(settings)

open SimKO.Tests.Generators

let private config = Generators.config 300

let private problem (p: Picked) = pick task.Value.Train task.Value.Test p

let private everyProblem (t: WordProblems) = Seq.append t.Train t.Test |> Array.ofSeq

// ---- exact fractions, independent of SimKO.Data.Tasks.Rational --------------------------------

let rec private gcd (a: int64) (b: int64) = if b = 0L then abs a else gcd b (a % b)
let private reduce (n: int64, d: int64) = let g = gcd n d in (n / g, d / g)
let private step (n: int64, d: int64) (op: char) (k: int64) =
    match op with
    | '+' -> reduce (n + k * d, d)
    | '-' -> reduce (n - k * d, d)
    | '*' -> reduce (n * k, d)
    | '/' -> reduce (n, d * k)
    | _ -> failwithf "unknown operation %c" op
let private referenceOf (n: int64, d: int64) = if d = 1L then string n else sprintf "\\frac{%d}{%d}" n d

/// Start amount and operands, in order, as the question states them.
let private numbersIn (question: string) =
    Regex.Matches(question, "[0-9]+") |> Seq.map (fun m -> int64 m.Value) |> List.ofSeq

let private one = Rational(Numerics.BigInteger.One, Numerics.BigInteger.One)

/// The rules of the generator, checked on one problem by recomputation from its text.
let private checkProblem (s: WordProblemSettings) (pr: WordProblem) =
    let numbers = numbersIn pr.Question
    Expect.equal numbers.Length (s.Steps + 1) pr.Question
    Expect.equal numbers.Head (int64 pr.Start) "the question starts with the start amount"
    Expect.equal (numbers.Tail) (pr.Steps |> Seq.map (fun st -> int64 st.Operand) |> List.ofSeq) "operands in order"
    Expect.isTrue (pr.Question.StartsWith(pr.Name + " ") && pr.Question.EndsWith("?")) pr.Question
    Expect.stringContains pr.Question pr.Item "the item is named"
    let mutable value = (int64 pr.Start, 1L)
    for st in pr.Steps do
        let next = step value st.Op (int64 st.Operand)
        let n, d = next
        Expect.isTrue (n > 0L && n <= int64 s.MaxValue * d) (sprintf "%s: %d/%d in range" pr.Question n d)
        if d <> 1L then
            Expect.isTrue (st.Op = '/' && pr.Measurable && s.AllowFractions) (sprintf "a fraction only from ÷ of a measurable item: %s" pr.Question)
        value <- next
    Expect.equal (int64 pr.Answer.Num, int64 pr.Answer.Den) value pr.Question
    Expect.equal pr.Reference (referenceOf value) "reference string"

let private boxed (s: string) = "\\boxed{" + s + "}"

let tests =
    testList "wordmath" [
        testCase "train and test are disjoint, of the asked sizes, and the same for the same settings" <| fun () ->
            let t = task.Value
            Expect.equal (t.Train.Count, t.Test.Count) (600, 100) "sizes"
            let trainPrompts = t.Train |> Seq.map t.Prompt |> Set.ofSeq
            Expect.equal trainPrompts.Count 600 "train problems are distinct"
            Expect.equal (t.Test |> Seq.map t.Prompt |> Set.ofSeq).Count 100 "test problems are distinct"
            Expect.isTrue (t.Test |> Seq.forall (fun p -> not (trainPrompts.Contains(t.Prompt p)))) "disjoint"
            Expect.equal (everyProblem t |> Array.map t.Id |> Array.distinct).Length 700 "ids are distinct"
            let again = WordProblems(settings)
            Expect.sequenceEqual (again.Train |> Seq.map again.Prompt) (t.Train |> Seq.map t.Prompt) "deterministic train"
            Expect.sequenceEqual (again.Test |> Seq.map again.Prompt) (t.Test |> Seq.map t.Prompt) "deterministic test"
        testCase "another seed draws other problems, still never a test problem in train" <| fun () ->
            let t = task.Value
            let other = WordProblems(WordProblemSettings(TrainProblems = 600, TestProblems = 100, Seed = 99))
            let testPrompts = t.Test |> Seq.map t.Prompt |> Set.ofSeq
            Expect.isFalse (Seq.forall2 (fun a b -> t.Prompt a = other.Prompt b) t.Train other.Train) "different draws"
            Expect.isTrue (other.Train |> Seq.forall (fun p -> not (testPrompts.Contains(other.Prompt p)))) "hash split holds across seeds"
        testCase "the reference is the exact value of the operations the question states" <| fun () ->
            let t = task.Value
            let problems = everyProblem t
            for pr in problems do checkProblem settings pr
            for op in [ '+'; '-'; '*'; '/' ] do
                Expect.isTrue (problems |> Array.exists (fun p -> p.Steps |> Array.exists (fun s -> s.Op = op))) (sprintf "some problem uses %c" op)
            let fractional = problems |> Array.filter (fun p -> not p.Answer.IsInteger)
            Expect.isGreaterThan fractional.Length 10 "some answers are fractions"
            Expect.isTrue (fractional |> Array.forall (fun p -> p.Measurable)) "only measurable items end in a fraction"
            Expect.equal (t.Prompt problems.[0]) (problems.[0].Question + "\n") "prompt = question + newline"
        testCase "other settings keep their rules: four steps, whole numbers only, a small maximum" <| fun () ->
            let s = WordProblemSettings(Steps = 4, MaxNumber = 9, AllowFractions = false, MaxValue = 60, TrainProblems = 150, TestProblems = 30)
            let t = WordProblems(s)
            let rng = Random 7
            for pr in everyProblem t do
                checkProblem s pr
                Expect.isTrue pr.Answer.IsInteger "no fractions"
                Expect.isLessThanOrEqual (t.Prompt pr).Length t.MaxPromptLength "prompt bound"
                for _ in 1..4 do
                    let good, bad = t.SampleCorrect(pr, rng), t.SampleWrong(pr, rng)
                    Expect.isTrue (t.Judge(pr, good).Correct) good
                    Expect.isFalse (t.Judge(pr, bad).Correct) bad
                    for a in [ good; bad ] do
                        Expect.isLessThanOrEqual a.Length t.MaxAnswerLength a
                        Expect.isTrue (a |> Seq.forall (fun c -> t.Alphabet.Contains c)) a
        testPropertyWithConfig config "every sampled correct response is judged correct, and votes the exact answer" (fun (p: Picked) ->
            let pr = problem p
            let t = task.Value
            let rng = Random p.Seed
            for _ in 1..5 do
                let a = t.SampleCorrect(pr, rng)
                let j = t.Judge(pr, a)
                Expect.isTrue j.Correct (sprintf "%s -> %s (%s)" pr.Question a j.Reason)
                Expect.equal j.Reason "correct" a
                Expect.equal j.Vote (pr.Answer.ToString()) a)
        testPropertyWithConfig config "every sampled wrong response is well-formed and judged wrong" (fun (p: Picked) ->
            let pr = problem p
            let t = task.Value
            let rng = Random p.Seed
            for _ in 1..5 do
                let a = t.SampleWrong(pr, rng)
                let j = t.Judge(pr, a)
                Expect.isFalse j.Correct (sprintf "%s -> %s" pr.Question a)
                Expect.stringStarts j.Reason "boxed" a
                Expect.isNotNull j.Vote a
                Expect.notEqual j.Vote (pr.Answer.ToString()) a)
        testCase "correct responses vary: work or not, operand order, forms of a fraction" <| fun () ->
            let t = task.Value
            for pr in t.Test do
                let rng = Random(pr.Start)
                let answers = Array.init 40 (fun _ -> t.SampleCorrect(pr, rng)) |> Array.distinct
                Expect.isGreaterThanOrEqual answers.Length 2 (sprintf "%s: %A" pr.Question answers)
                Expect.isTrue (answers |> Array.exists (fun a -> a.StartsWith "\\boxed")) "some answers are just the box"
                Expect.isTrue (answers |> Array.exists (fun a -> a.Contains "=")) "some show the work"
        testPropertyWithConfig config "mutations that break the rules are rejected" (fun (p: Picked) ->
            let pr = problem p
            let t = task.Value
            let rng = Random p.Seed
            let good = t.SampleCorrect(pr, rng)
            Expect.isTrue (t.Judge(pr, good).Correct) good
            let inner = SimKO.Data.Math.AnswerExtraction.LastBoxed good
            // the same response with the box taken off: the grader alone would accept the number
            let bare = good.Replace(boxed inner, inner)
            let struct (_, bareOk) = SimKO.Data.Math.MathGrader.Grade(inner, pr.Reference)
            Expect.isTrue bareOk "the bare value itself is right"
            let j = t.Judge(pr, bare)
            Expect.isFalse j.Correct bare
            Expect.equal j.Reason "no \\boxed{} answer" bare
            Expect.isNull j.Vote bare
            for wrong in [ yield pr.Answer + one; if pr.Answer.Num > pr.Answer.Den then yield pr.Answer - one ] do
                for form in WordProblems.Forms wrong do
                    let a = good.Replace(boxed inner, boxed form)
                    Expect.isFalse (t.Judge(pr, a).Correct) (sprintf "off by one: %s (answer %s)" a pr.Reference)
            for garbage in [ boxed ""; boxed "pens"; boxed pr.Item; boxed "?"; boxed "="; "\\boxed{" + inner; "\\boxed"; "\\frac{" + inner + "}" ] do
                let a = good.Replace(boxed inner, garbage)
                Expect.isFalse (t.Judge(pr, a).Correct) (sprintf "garbage: %s" a)
            for empty in [ ""; " "; "\n" ] do
                let j = t.Judge(pr, empty)
                Expect.isFalse j.Correct "empty"
                Expect.equal j.Reason "empty answer" "reason"
                Expect.isNull j.Vote "no vote")
        testCase "a fraction is accepted as \\frac, n/d and a terminating decimal, all one vote" <| fun () ->
            let t = task.Value
            let half = WordProblem("x", "Ann has 7 liters of milk. Ann splits it into 2 equal parts and keeps one part. How many liters of milk does Ann have now?",
                                   "Ann", "liters of milk", true, 7, [| WordStep('/', 2) |], Rational(Numerics.BigInteger 7, Numerics.BigInteger 2), "\\frac{7}{2}")
            let forms = [ "\\boxed{\\frac{7}{2}}"; "\\boxed{7/2}"; "\\boxed{3.5}"; "7/2=7/2. \\boxed{3.5}"; "\\boxed{\\dfrac{7}{2}}"; "\\boxed{3.50}" ]
            for a in forms do
                let j = t.Judge(half, a)
                Expect.isTrue j.Correct a
                Expect.equal j.Vote "7/2" a
            Expect.equal (List.ofSeq (WordProblems.Forms half.Answer)) [ "\\frac{7}{2}"; "7/2"; "3.5" ] "the three forms"
            for a in [ "\\boxed{3.4}"; "\\boxed{7/3}"; "\\boxed{\\frac{2}{7}}"; "\\boxed{3}"; "3.5"; "\\frac{7}{2}" ] do
                Expect.isFalse (t.Judge(half, a).Correct) a
            let third = Rational(Numerics.BigInteger 7, Numerics.BigInteger 3)
            Expect.equal (List.ofSeq (WordProblems.Forms third)) [ "\\frac{7}{3}"; "7/3" ] "no decimal when it does not terminate"
            Expect.equal (WordProblems.Decimal(Rational(Numerics.BigInteger 3, Numerics.BigInteger 8))) "0.375" "decimal"
            // the generated fractional problems take every form of their answer
            let fractional = everyProblem t |> Array.filter (fun p -> not p.Answer.IsInteger)
            Expect.isNonEmpty fractional "fractional problems exist"
            Expect.isTrue (fractional |> Array.exists (fun p -> (WordProblems.Forms p.Answer).Count = 3)) "some terminate"
            for pr in fractional do
                for form in WordProblems.Forms pr.Answer do
                    let j = t.Judge(pr, boxed form)
                    Expect.isTrue j.Correct (sprintf "%s: %s" pr.Question form)
                    Expect.equal j.Vote (pr.Answer.ToString()) form
        testCase "prompts and sampled answers use only the alphabet and fit the length bounds" <| fun () ->
            let t = task.Value
            let inAlphabet (s: string) = s |> Seq.forall (fun c -> t.Alphabet.Contains c)
            Expect.equal (t.Alphabet |> Seq.distinct |> Seq.length) t.Alphabet.Length "no repeated character"
            let rng = Random 11
            let mutable longestAnswer = 0
            for pr in everyProblem t do
                let prompt = t.Prompt pr
                Expect.isLessThanOrEqual prompt.Length t.MaxPromptLength prompt
                Expect.isTrue (inAlphabet prompt) prompt
                for _ in 1..6 do
                    for a in [ t.SampleCorrect(pr, rng); t.SampleWrong(pr, rng) ] do
                        Expect.isLessThanOrEqual a.Length t.MaxAnswerLength a
                        Expect.isTrue (inAlphabet a) a
                        longestAnswer <- max longestAnswer a.Length
            Expect.isGreaterThan longestAnswer (t.MaxAnswerLength / 2) "the bound is not far off"
            Expect.isLessThanOrEqual t.MaxAnswerLength 120 "a modest response budget with the default settings"
            let fourSteps = WordProblems(WordProblemSettings(Steps = 4, TrainProblems = 1, TestProblems = 1))
            Expect.isLessThanOrEqual fourSteps.MaxAnswerLength 120 "still modest with four steps"
        testCase "bad settings are reported all at once" <| fun () ->
            let message =
                try WordProblems(WordProblemSettings(Steps = 5, MaxNumber = 1, MaxValue = 100000, TrainProblems = 0, TestPerMille = 0)) |> ignore; "no error"
                with :? ArgumentException as e -> e.Message
            for part in [ "steps must be 1..4"; "max_number must be 2..99"; "max_value"; "train/test problems"; "test_per_mille" ] do
                Expect.stringContains message part part
    ]
