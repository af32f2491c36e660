/// SPEC §4, §7.6: every estimator equals its float64 formula on random groups; group advantages
/// sum to zero, constant groups give zero and no NaN, and std-normalised advantages are invariant
/// to positive affine maps of the rewards.
module SimKO.Tests.AdvantagesTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Advantages
open SimKO.Tests.Generators
open SimKO.Tests.Checks

let private advantages est (m: MixedGroups) (rewards: float[]) =
    toArray (compute est m.G (torch.tensor(rewards)))

let private groupSums (g: int) (a: float[]) = a |> Array.chunkBySize g |> Array.map Array.sum

let tests =
    testList "Advantages" [
        for est in [ GroupNormalised true; GroupNormalised false; LeaveOneOut ] do
            testPropertyWithConfig (config 100) (sprintf "group advantages sum to zero per group (7.6, %A)" est) (fun (m: MixedGroups) ->
                use _ = torch.NewDisposeScope()
                let a = advantages est m m.Rewards
                allClose "group sums" 1e-9 0.0 (Array.zeroCreate (a.Length / m.G)) (groupSums m.G a))
        testPropertyWithConfig (config 100) "pass@k-training advantages sum to zero per group" (fun (m: MixedGroups) (k: byte) ->
            use _ = torch.NewDisposeScope()
            let k = 1 + int k % m.G
            let a = advantages (PassAtKTraining k) m m.Rewards
            allClose "group sums" 1e-6 0.0 (Array.zeroCreate (a.Length / m.G)) (groupSums m.G a))
        testPropertyWithConfig (config 100) "constant-reward group gives zero advantage and no NaN (7.6)" (fun (m: MixedGroups) (r: float) ->
            use _ = torch.NewDisposeScope()
            let r = if System.Double.IsFinite r && abs r < 1e6 then r else 1.0  // rewards are bounded scores
            for est in [ GroupNormalised true; GroupNormalised false; LeaveOneOut ] do
                let a = advantages est m (Array.create m.Rewards.Length r)
                Expect.isTrue (Array.forall System.Double.IsFinite a) "finite"
                allClose (sprintf "%A" est) 0.0 0.0 (Array.zeroCreate a.Length) a)
        testPropertyWithConfig (config 100) "std-normalised advantages are invariant to positive affine maps of the rewards (7.6)" (fun (m: MixedGroups) (scale: byte) (shift: sbyte) ->
            use _ = torch.NewDisposeScope()
            let s = 0.5 + float scale / 16.0
            let a1 = advantages (GroupNormalised true) m m.Rewards
            let a2 = advantages (GroupNormalised true) m (m.Rewards |> Array.map (fun r -> s * r + float shift))
            // ε = 1e-6 in the denominator scales with the rewards only approximately
            allClose "advantages" 1e-5 1e-5 a1 a2)
        // Rewards: 0/1 and graded (correct answers scored 0.25..1.75), so the mean and std vary.
        for name, estimator, formula in
            [ "GRPO", GroupNormalised true, (fun (g: int) (_: int) r -> Reference.Advantages.grpo g r)
              "Dr. GRPO (no std)", GroupNormalised false, (fun g _ r -> Reference.Advantages.drGrpo g r)
              "RLOO", LeaveOneOut, (fun g _ r -> Reference.Advantages.rloo g r)
              "PSR", PositiveOnly, (fun _ _ r -> Reference.Advantages.psr r)
              "NSR", NegativeOnly, (fun _ _ r -> Reference.Advantages.nsr r)
              "W-REINFORCE (lambda_w 0.1)", WeightedReinforce 0.1, (fun _ _ r -> Reference.Advantages.wReinforce 0.1 r)
              "W-REINFORCE (lambda_w 0.7)", WeightedReinforce 0.7, (fun _ _ r -> Reference.Advantages.wReinforce 0.7 r)
              "Pass@k training", PassAtKTraining 0, (fun g k r -> Reference.Advantages.passAtK g k r) ] do
            testPropertyWithConfig (config 100) (sprintf "%s advantages equal their float64 formula (SPEC §4)" name) (fun (m: MixedGroups) (k: byte) (graded: bool) ->
                use _ = torch.NewDisposeScope()
                let k = 1 + int k % m.G
                let est = match estimator with PassAtKTraining _ -> PassAtKTraining k | e -> e
                let rewards = if graded then m.Rewards |> Array.mapi (fun i r -> r * (0.25 + 0.5 * float (i % 4))) else m.Rewards
                allClose (sprintf "%A of %A" est rewards) 1e-10 1e-9 (formula m.G k rewards) (advantages est m rewards))
        testCase "PSR, NSR and W-REINFORCE map correct/incorrect to their constants" <| fun () ->
            use _ = torch.NewDisposeScope()
            let m = { Rewards = [| 1.0; 0.0; 1.0; 0.0 |]; G = 2 }
            allClose "psr" 0.0 0.0 [| 1.0; 0.0; 1.0; 0.0 |] (advantages PositiveOnly m m.Rewards)
            allClose "nsr" 0.0 0.0 [| 0.0; -1.0; 0.0; -1.0 |] (advantages NegativeOnly m m.Rewards)
            allClose "w-reinforce" 1e-12 0.0 [| 0.1; -1.0; 0.1; -1.0 |] (advantages (WeightedReinforce 0.1) m m.Rewards)
        testCase "RLOO subtracts the mean of the other responses" <| fun () ->
            use _ = torch.NewDisposeScope()
            let m = { Rewards = [| 1.0; 0.0; 0.0; 1.0 |]; G = 4 }
            allClose "rloo" 1e-12 0.0 [| 1.0 - 1.0 / 3.0; -2.0 / 3.0; -2.0 / 3.0; 1.0 - 1.0 / 3.0 |] (advantages LeaveOneOut m m.Rewards)
        testCase "estimator validation reports every problem" <| fun () ->
            Expect.isNonEmpty (validate 1 (GroupNormalised true)) "std of one response"
            Expect.isNonEmpty (validate 4 (PassAtKTraining 5)) "k > group"
            Expect.isEmpty (validate 4 (PassAtKTraining 4)) "k = group is fine"
    ]
