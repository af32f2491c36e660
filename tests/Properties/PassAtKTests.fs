/// SPEC §7.9: unbiased pass@k against brute-force enumeration, and its basic laws.
module SimKO.Tests.PassAtKTests

open Expecto
open SimKO.Math.PassAtK
open SimKO.Tests.Generators
open SimKO.Tests.Checks

/// Fraction of k-subsets of n samples (c correct) that contain a correct one, by enumeration.
let bruteForce n c k =
    let rec subsets start k =
        if k = 0 then [ [] ]
        else [ for i in start .. n - 1 do for rest in subsets (i + 1) (k - 1) -> i :: rest ]
    let all = subsets 0 k
    let hit = all |> List.filter (List.exists (fun i -> i < c)) |> List.length
    float hit / float all.Length

let tests =
    testList "PassAtK" [
        testPropertyWithConfig (config 200) "pass@k equals brute-force enumeration over k-subsets (7.9)" (fun (p: PassCase) ->
            allClose "pass@k" 1e-12 1e-12 [| bruteForce p.N p.C p.K |] [| passAtK p.N p.C p.K |])
        testPropertyWithConfig (config 200) "pass@1 = c/n (7.9)" (fun (p: PassCase) ->
            allClose "pass@1" 1e-12 1e-12 [| float p.C / float p.N |] [| passAtK p.N p.C 1 |])
        testPropertyWithConfig (config 200) "pass@k is non-decreasing in k and 1 when n - c < k (7.9)" (fun (p: PassCase) ->
            let values = [| for k in 1 .. p.N -> passAtK p.N p.C k |]
            for k in 1 .. p.N - 1 do
                Expect.isGreaterThanOrEqual values.[k] (values.[k - 1] - 1e-15) (sprintf "pass@%d >= pass@%d" (k + 1) k)
            for k in 1 .. p.N do
                if p.N - p.C < k then Expect.equal values.[k - 1] 1.0 (sprintf "pass@%d with n - c = %d" k (p.N - p.C)))
        testCase "pass@k is finite and in [0, 1] for n = 300, k = 256, every c (7.9)" <| fun () ->
            for c in 0 .. 300 do
                let v = passAtK 300 c 256
                Expect.isTrue (System.Double.IsFinite v && v >= 0.0 && v <= 1.0) (sprintf "c = %d gave %g" c v)
        testCase "the ladder of k is 1, 2, 4, ... up to n" <| fun () ->
            Expect.equal (ladder 256) [ 1; 2; 4; 8; 16; 32; 64; 128; 256 ] "n = 256"
            Expect.equal (ladder 12) [ 1; 2; 4; 8; 12 ] "n = 12"
        testCase "maj@n takes the most frequent answer; unanswered samples do not vote" <| fun () ->
            Expect.isTrue (majorityCorrect [ Some "4", true; Some "4", true; Some "5", false; None, false; None, false ]) "4 wins"
            Expect.isFalse (majorityCorrect [ Some "5", false; Some "4", true; Some "5", false ]) "5 wins"
            Expect.isFalse (majorityCorrect [ None, false ]) "no answer"
    ]
