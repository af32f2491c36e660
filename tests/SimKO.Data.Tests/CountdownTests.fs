/// Countdown: the problem space of REPRODUCTION-NOTES, its splits, and a verifier that rejects every way to cheat.
module SimKO.Data.Tests.CountdownTests

open System
open System.Text.RegularExpressions
open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data
open SimKO.Data.Tasks

let task = lazy (CountdownTask())
let private all = lazy (Array.append (Seq.toArray (task.Value.Generate(Split.Train, 0))) (Seq.toArray (task.Value.Generate(Split.Test, 0))))
let payload (p: Problem) = p.Payload :?> CountdownPayload

// ---- An independent plain re-implementation of the expression forms, to compare with the task's list ----

type private Q = { N: int64; D: int64 }
let rec private gcd (a: int64) (b: int64) = if b = 0L then abs a else gcd b (a % b)
let private q n d =
    let g = max 1L (gcd n d)
    let s = if d < 0L then -1L else 1L
    { N = s * n / g; D = s * d / g }
let private apply (a: Q option) op (b: Q option) =
    match a, b with
    | Some a, Some b ->
        match op with
        | '+' -> Some(q (a.N * b.D + b.N * a.D) (a.D * b.D))
        | '-' -> Some(q (a.N * b.D - b.N * a.D) (a.D * b.D))
        | '*' -> Some(q (a.N * b.N) (a.D * b.D))
        | _ -> if b.N = 0L then None else Some(q (a.N * b.D) (a.D * b.N))
    | _ -> None

/// Every distinct correct string of the forms a o b, a o b o c, (a o b) o c, a o (b o c).
let bruteForceSolutions (numbers: int[]) (target: int) =
    let ops = [ '+'; '-'; '*'; '/' ]
    let v (x: int) = Some(q (int64 x) 1L)
    let isMul o = o = '*' || o = '/'
    let idx = [ 0 .. numbers.Length - 1 ]
    [ for i in idx do
        for j in idx do
          if i <> j then
            let a, b = numbers.[i], numbers.[j]
            for o in ops do
              yield sprintf "%d%c%d" a o b, apply (v a) o (v b)
            for k in idx do
              if k <> i && k <> j then
                let c = numbers.[k]
                for o1 in ops do
                  for o2 in ops do
                    let flat = if isMul o2 && not (isMul o1) then apply (v a) o1 (apply (v b) o2 (v c)) else apply (apply (v a) o1 (v b)) o2 (v c)
                    yield sprintf "%d%c%d%c%d" a o1 b o2 c, flat
                    yield sprintf "(%d%c%d)%c%d" a o1 b o2 c, apply (apply (v a) o1 (v b)) o2 (v c)
                    yield sprintf "%d%c(%d%c%d)" a o1 b o2 c, apply (v a) o1 (apply (v b) o2 (v c)) ]
    |> List.filter (fun (_, value) -> value = Some(q (int64 target) 1L))
    |> List.map fst
    |> List.distinct
    |> List.sort

// ---- Generators ----

type AnyProblem = AnyProblem of Problem
type ProblemWithRepeat = ProblemWithRepeat of Problem

type Generators =
    static member AnyProblem() : Arbitrary<AnyProblem> = Gen.elements all.Value |> Gen.map AnyProblem |> Arb.fromGen
    static member ProblemWithRepeat() : Arbitrary<ProblemWithRepeat> =
        all.Value |> Array.filter (fun p -> (payload p).Numbers |> Array.distinct |> Array.length < 3)
        |> Gen.elements |> Gen.map ProblemWithRepeat |> Arb.fromGen

let private config = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<Generators> ]; maxTest = 300 }

let private grade (p: Problem) (s: string) = task.Value.Grade(p, s)

let private rejectedBecause (p: Problem) (response: string) (reason: string) =
    let g = grade p response
    not g.Correct && not (isNull g.Reason) && g.Reason.Contains reason

let tests =
    testList "countdown" [
        test "the default space has 2,290 problems: 2,090 train and 200 test, disjoint" {
            let t = task.Value
            Expect.equal t.TotalProblems 2290 "problems"
            Expect.equal (t.SplitSize Split.Train) (Nullable 2090) "train"
            Expect.equal (t.SplitSize Split.Test) (Nullable 200) "test"
            let train = t.Generate(Split.Train, 0) |> Seq.map (fun p -> p.Id) |> Set.ofSeq
            let test = t.Generate(Split.Test, 0) |> Seq.map (fun p -> p.Id) |> Set.ofSeq
            Expect.equal train.Count 2090 "distinct train"
            Expect.isEmpty (Set.intersect train test) "no problem in both"
        }
        test "the seed orders a split without changing it, and the same seed gives the same order" {
            let t = task.Value
            let ids seed = t.Generate(Split.Test, seed) |> Seq.map (fun p -> p.Id) |> Seq.toList
            Expect.equal (ids 1) (ids 1) "same seed"
            Expect.notEqual (ids 1) (ids 2) "other order"
            Expect.equal (Set.ofList (ids 1)) (Set.ofList (ids 2)) "same problems"
            Expect.equal (t.Generate(Split.Train, 3, 16).Count) 16 "count"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> t.Generate(Split.Test, 0, 201) |> ignore) "more than the split"
        }
        test "problems are as in REPRODUCTION-NOTES: 3 numbers 1-9, target 1-99 not among them, >= 2 solutions (mean 6.9, median 4)" {
            let counts = all.Value |> Array.map (fun p -> (payload p).Solutions.Length)
            for p in all.Value do
                let pl = payload p
                Expect.equal pl.Numbers.Length 3 "three numbers"
                Expect.isTrue (pl.Numbers |> Array.forall (fun n -> n >= 1 && n <= 9)) "numbers 1-9"
                Expect.isTrue (pl.Target >= 1 && pl.Target <= 99 && not (Array.contains pl.Target pl.Numbers)) (sprintf "%s target" p.Id)
                Expect.isGreaterThanOrEqual pl.Solutions.Length 2 "two solutions"
            Expect.floatClose Accuracy.low (Array.averageBy float counts) 6.92 "mean solutions"
            Expect.equal (Array.sort counts).[counts.Length / 2] 4 "median solutions"
        }
        test "the listed solutions are exactly the correct strings of the forms (independent brute force, all 2,290)" {
            for p in all.Value do
                let pl = payload p
                Expect.sequenceEqual pl.Solutions (bruteForceSolutions pl.Numbers pl.Target) (sprintf "%s solutions" p.Id)
        }
        test "every listed solution is accepted" {
            for p in all.Value do
                for s in (payload p).Solutions do
                    let g = grade p s
                    Expect.isTrue g.Correct (sprintf "%s: %s rejected (%s)" p.Id s g.Reason)
        }
        test "prompts read like 575:017=, use only the alphabet of 18 symbols, and responses fit the maximum" {
            let t = task.Value
            Expect.equal t.Alphabet.Length 18 "alphabet"
            Expect.equal t.MaxResponseLength 7 "max response"
            for p in all.Value do
                let prompt = t.Prompt p
                Expect.isTrue (Regex.IsMatch(prompt, "^[1-9]{3}:[0-9]{3}=$")) (sprintf "prompt %s" prompt)
                Expect.equal prompt.Length t.MaxPromptLength "prompt length"
                Expect.equal (int (prompt.Substring(4, 3))) (payload p).Target "target in the prompt"
                for s in (payload p).Solutions do
                    Expect.isLessThanOrEqual s.Length t.MaxResponseLength "response length"
                    Expect.isTrue (s |> Seq.forall (fun c -> t.Alphabet.Contains c)) (sprintf "%s in the alphabet" s)
        }
        testPropertyWithConfig config "sampled correct responses are accepted, sampled wrong ones are well-formed and rejected" <| fun (AnyProblem p) (seed: int) ->
            let rng = Random seed
            let correct = task.Value.SampleCorrect(p, rng)
            let wrong = task.Value.SampleWrong(p, rng)
            (grade p correct).Correct && rejectedBecause p wrong "evaluates to"
            && wrong.Length <= task.Value.MaxResponseLength && wrong |> Seq.forall (fun c -> task.Value.Alphabet.Contains c)

        testPropertyWithConfig config "a number that is not given is rejected" <| fun (AnyProblem p) ->
            let pl = payload p
            let solution = pl.Solutions.[0]
            let missing = [ 1 .. 9 ] |> List.find (fun d -> not (Array.contains d pl.Numbers))
            let i = solution |> Seq.findIndex Char.IsDigit
            let mutated = solution.Substring(0, i) + string missing + solution.Substring(i + 1)
            rejectedBecause p mutated (sprintf "uses %d, which is not given" missing)

        testPropertyWithConfig config "a number used more often than given is rejected" <| fun (AnyProblem p) ->
            let pl = payload p
            let solution = pl.Solutions.[0]
            let n = solution |> Seq.find Char.IsDigit |> string |> int
            let used = solution |> Seq.filter (fun c -> string c = string n) |> Seq.length
            let given = pl.Numbers |> Array.filter ((=) n) |> Array.length
            let mutated = solution + String.replicate (given - used + 1) (sprintf "+%d" n)
            rejectedBecause p mutated "more often than given"

        testPropertyWithConfig config "division by zero is rejected" <| fun (ProblemWithRepeat p) ->
            let ns = (payload p).Numbers
            let y = ns |> Array.countBy id |> Array.find (fun (_, c) -> c >= 2) |> fst
            let x = match ns |> Array.tryFind ((<>) y) with Some x -> x | None -> y
            rejectedBecause p (sprintf "%d/(%d-%d)" x y y) "divides by zero"

        testPropertyWithConfig config "malformed responses are rejected with a reason" <| fun (AnyProblem p) ->
            let s = (payload p).Solutions.[0]
            let first = s |> Seq.findIndex Char.IsDigit
            [ s + "+"; s + ")"; "*" + s; "(" + s; "-" + s; s.Substring(0, first) + "x" + s.Substring(first + 1); s + "="; ""; "  " ]
            |> List.forall (fun m -> let g = grade p m in not g.Correct && not (isNull g.Reason))

        testPropertyWithConfig config "spaces and a true '=target' claim are accepted; a false claim is rejected" <| fun (AnyProblem p) ->
            let pl = payload p
            let s = pl.Solutions.[0]
            (grade p (String.Join(" ", s.ToCharArray()))).Correct
            && (grade p (sprintf "%s=%d" s pl.Target)).Correct
            && rejectedBecause p (sprintf "%s=%d" s (pl.Target + 1)) "claims"

        test "the 4-number variant: forms over 2 to 4 numbers, all solutions accepted, longer responses" {
            let t = CountdownTask(CountdownSettings(Numbers = 4, MaxNumber = 5, MaxTarget = 40, TestCount = 50), "countdown4-small")
            Expect.equal t.MaxResponseLength 11 "a o (b o (c o d)) is 11 characters"
            let problems = Seq.append (t.Generate(Split.Train, 0)) (t.Generate(Split.Test, 0)) |> Seq.toArray
            Expect.isGreaterThan problems.Length 500 "problems"
            let mutable fourNumber = 0
            for p in problems do
                let pl = payload p
                Expect.equal pl.Numbers.Length 4 "four numbers"
                Expect.equal (t.Prompt p).Length t.MaxPromptLength "prompt length"
                for s in pl.Solutions do
                    if (s |> Seq.filter Char.IsDigit |> Seq.length) = 4 then fourNumber <- fourNumber + 1
                    Expect.isTrue (t.Grade(p, s).Correct) (sprintf "%s: %s" p.Id s)
                    Expect.isLessThanOrEqual s.Length t.MaxResponseLength "length"
            Expect.isGreaterThan fourNumber 1000 "solutions using all four numbers"
        }
        test "multi-digit numbers are separated by commas in the prompt" {
            let t = CountdownTask(CountdownSettings(Numbers = 2, MinNumber = 8, MaxNumber = 12, MaxTarget = 200, MinSolutions = 1, TestCount = 5))
            Expect.stringContains t.Alphabet "," "comma in the alphabet"
            for p in t.Generate(Split.Train, 0) do
                let prompt = t.Prompt p
                Expect.isTrue (Regex.IsMatch(prompt, "^[0-9]+,[0-9]+:[0-9]{3}=$")) prompt
                Expect.isLessThanOrEqual prompt.Length t.MaxPromptLength "prompt length"
        }
        test "invalid settings are refused with every problem listed" {
            let bad = CountdownSettings(Numbers = 7, MinNumber = 0, MaxTarget = 5000, TargetWidth = 2)
            Expect.equal (bad.Validate().Count) 3 "three problems"
            let message = try CountdownTask bad |> ignore; "" with :? ArgumentException as e -> e.Message
            for fragment in [ "Numbers = 7"; "MinNumber = 0"; "TargetWidth = 2" ] do
                Expect.stringContains message fragment "listed"
        }
    ]
