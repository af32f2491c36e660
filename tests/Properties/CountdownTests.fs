/// Countdown (built-in task): the generated space matches its definition, every instance has a
/// solution its verifier accepts, and answers that break a rule are rejected.
module SimKO.Tests.CountdownTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open SimKO.Data.Tasks

let private task = lazy Countdown()

open SimKO.Tests.Generators

let private config = Generators.config 300

let private problem (p: Picked) = task.Value.All.[p.Index % task.Value.All.Count]

let tests =
    testList "countdown" [
        testCase "the problem space is 2,290 problems, 2,090 train and 200 test, disjoint" <| fun () ->
            let t = task.Value
            Expect.equal t.All.Count 2290 "problems (REPRODUCTION-NOTES)"
            Expect.equal (t.Train.Count, t.Test.Count) (2090, 200) "split"
            let trainIds = t.Train |> Seq.map _.Id |> Set.ofSeq
            Expect.isTrue (t.Test |> Seq.forall (fun p -> not (trainIds.Contains p.Id))) "disjoint"
            Expect.isTrue (t.All |> Seq.forall (fun p -> p.Solutions.Length >= 2 && not (Array.contains p.Target p.Numbers))) "definition"
        testPropertyWithConfig config "every listed solution is accepted by the verifier" (fun (p: Picked) ->
            let pr = problem p
            for s in pr.Solutions do
                Expect.equal (Countdown.Verify(pr, s)) CountdownVerdict.Correct s)
        testPropertyWithConfig config "a sampled wrong answer is well-formed and rejected as wrong" (fun (p: Picked) ->
            let pr = problem p
            let w = task.Value.SampleWrong(pr, Random p.Seed)
            Expect.equal (Countdown.Verify(pr, w)) CountdownVerdict.WrongValue w)
        testPropertyWithConfig config "using a number twice is rejected" (fun (p: Picked) ->
            let pr = problem p
            let n = pr.Numbers |> Array.max
            let count = pr.Numbers |> Array.filter ((=) n) |> Array.length
            let answer = String.Join("+", Array.create (count + 1) (string n))
            Expect.equal (Countdown.Verify(pr, answer)) CountdownVerdict.NumberUsedTwice answer)
        testPropertyWithConfig config "a number that is not given is rejected" (fun (p: Picked) ->
            let pr = problem p
            let missing = [ 1 .. 9 ] |> List.tryFind (fun d -> not (Array.contains d pr.Numbers))
            match missing with
            | Some d ->
                let answer = sprintf "%s+%d" (string pr.Numbers.[0]) d
                Expect.equal (Countdown.Verify(pr, answer)) CountdownVerdict.NumberNotGiven answer
            | None -> failtestf "problem %A uses every digit 1..9: no missing number to try" pr.Numbers)
        testCase "malformed answers, division by zero and cheating are rejected" <| fun () ->
            let pr = task.Value.All |> Seq.find (fun p -> p.Numbers = [| 1; 1; 4 |] && p.Target = 2)
            for answer, verdict in [ "", CountdownVerdict.Empty
                                     "4-(1+1", CountdownVerdict.Malformed
                                     "4**1", CountdownVerdict.Malformed
                                     "2", CountdownVerdict.NumberNotGiven
                                     "4/(1-1)", CountdownVerdict.DivisionByZero
                                     "4/1/1", CountdownVerdict.WrongValue
                                     "4-1-1", CountdownVerdict.Correct
                                     " 4/(1+1) ", CountdownVerdict.Correct ] do
                Expect.equal (Countdown.Verify(pr, answer)) verdict (sprintf "'%s'" answer)
    ]
