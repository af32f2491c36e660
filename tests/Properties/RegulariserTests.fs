/// KL estimators, Entropy-Adv and KL-Cov (SPEC §2, §4) on hand-checked values.
module SimKO.Tests.RegulariserTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.Checks

let tests =
    testList "regularisers" [
        testCase "k1, k2, k3 estimators match their formulas and vanish when the policies agree" <| fun () ->
            use _ = torch.NewDisposeScope()
            let lp = torch.tensor([| -1.0; -2.0; -0.5 |])
            let refLp = torch.tensor([| -1.0; -1.5; -1.0 |])
            let d = [| 0.0; -0.5; 0.5 |]
            allClose "k1" 1e-12 0.0 d (toArray (KlPenalty.estimate KlPenalty.K1 lp refLp))
            allClose "k2" 1e-12 0.0 (d |> Array.map (fun x -> 0.5 * x * x)) (toArray (KlPenalty.estimate KlPenalty.K2 lp refLp))
            allClose "k3" 1e-12 0.0 (d |> Array.map (fun x -> exp (-x) + x - 1.0)) (toArray (KlPenalty.estimate KlPenalty.K3 lp refLp))
        testPropertyWithConfig (config 60) "k3 is non-negative" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let k3 = KlPenalty.estimate KlPenalty.K3 b.OldLogProbs (b.OldLogProbs + torch.randn_like(b.OldLogProbs))
            Expect.isGreaterThanOrEqual (value (k3.min())) 0.0 "min k3")
        testCase "entropy-adv adds min(a·H, |A|/kappa)" <| fun () ->
            use _ = torch.NewDisposeScope()
            let a = torch.tensor([| 1.0; -1.0; 0.2 |])
            let h = torch.tensor([| 0.5; 3.0; 3.0 |])
            let shaped = Regularisers.entropyAdvantage { Scale = 0.4; Kappa = 2.0 } a h
            allClose "A'" 1e-12 0.0 [| 1.2; -0.5; 0.3 |] (toArray shaped)
        testPropertyWithConfig (config 60) "kl-cov selects ceil(ratio·n) valid tokens, the ones with the largest covariance" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let adv = b.Advantages.unsqueeze(1L).expand_as(b.Mask)
            let lp = b.OldLogProbs
            let sel = Regularisers.klCovSelection { Ratio = 0.3; Coef = 1.0 } adv lp b.Mask
            let n = value (b.Mask.sum())
            Expect.equal (value (sel.sum())) (max 1.0 (ceil (0.3 * n))) "count"
            Expect.equal (value ((sel * (1.0 - b.Mask)).sum())) 0.0 "only valid tokens"
            let cov = (adv - maskedMean adv b.Mask) * (lp - maskedMean lp b.Mask)
            let selectedMin = value (torch.where(sel.gt(sc 0.0), cov, torch.full_like(cov, sc infinity)).min())
            let othersMax = value (torch.where(sel.eq(sc 0.0).logical_and(b.Mask.gt(sc 0.0)), cov, torch.full_like(cov, sc -infinity)).max())
            Expect.isGreaterThanOrEqual selectedMin othersMax "selected covariances dominate")
    ]
