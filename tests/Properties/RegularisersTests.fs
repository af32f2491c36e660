/// Entropy-Adv and KL-Cov (SPEC §4): hand-checked values, KL-Cov's token selection, and each
/// method's loss and gradient against the plain reference.
module SimKO.Tests.RegularisersTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.Checks
open SimKO.Tests.Batches

let tests =
    testList "Regularisers" [
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
        testPropertyWithConfig (config 60) "KL-Cov's loss and gradient equal the plain reference (penalty on the selected tokens, PPO elsewhere)" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            // off-policy, so that |log π − log π_old| is never at its kink
            let c = { c with OffPolicy = 0.3 }
            let b = build c
            let settings : Regularisers.KlCovSettings = { Ratio = 0.3; Coef = 0.7 }
            let o = Methods.objective (Methods.KlCov { Common = Methods.commonDefaults; KlCov = settings })
            let l, g = lossAndGrad o b
            let rb = reference c b
            let n = c.B * c.T
            let valid = [| for j in 0 .. n - 1 do if rb.Mask.[j] > 0.0 then yield j |]
            let meanA = valid |> Array.averageBy (fun j -> rb.Adv.[j / c.T])
            // the covariance is taken on the old log-probs (the update's inputs, SPEC §7.11)
            let meanL = valid |> Array.averageBy (fun j -> rb.Old.[j])
            let k = max 1 (int (ceil (settings.Ratio * float valid.Length)))
            let cov j = (rb.Adv.[j / c.T] - meanA) * (rb.Old.[j] - meanL)
            let ranked = valid |> Array.sortByDescending cov
            // Tokens whose covariance ties the k-th one (to rounding: two responses of one token
            // each have equal covariances by symmetry) may be chosen either way; the CPU's
            // rounding decides. Outside the tie the reference decides alone; inside it, the
            // selection the implementation made is taken once it is checked to be a tie.
            let boundary = cov ranked.[k - 1]
            let tied j = abs (cov j - boundary) <= 1e-6 * (1.0 + abs boundary)
            let oldLp = torch.where(b.Mask.gt(sc 0.0), b.OldLogProbs, torch.zeros_like(b.OldLogProbs))
            let implSel = toArray (Regularisers.klCovSelection settings (b.Advantages.unsqueeze(1L).expand_as(b.Mask)) oldLp b.Mask)
            let sure = ranked |> Array.filter (fun j -> cov j > boundary && not (tied j)) |> Set.ofArray
            let fromTie = valid |> Array.filter (fun j -> tied j && implSel.[j] > 0.5) |> Set.ofArray
            Expect.equal (sure.Count + fromTie.Count) k "the implementation fills the tie up to k tokens"
            let selected = Set.union sure fromTie
            let rl, rg =
                Reference.tokenLossAndGrad rb (fun j lp ->
                    let a, old = rb.Adv.[j / c.T], rb.Old.[j]
                    if selected.Contains j then
                        let gamma = exp (lp - old)
                        -a * gamma + settings.Coef * abs (lp - old), -a * gamma + settings.Coef * float (sign (lp - old))
                    else Reference.clippedTerm a old lp)
            allClose "loss" 1e-10 1e-9 [| rl |] [| l |]
            allClose "gradient" 1e-10 1e-8 rg (toArray g))
        testPropertyWithConfig (config 60) "Entropy-Adv's loss and gradient equal the plain reference (A + min(a·H, |A|/kappa) per token)" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let settings : Regularisers.EntropyAdvSettings = { Scale = 0.4; Kappa = 2.0 }
            let o = Methods.objective (Methods.EntropyAdv { Common = Methods.commonDefaults; EntropyAdv = settings })
            let l, g = lossAndGrad o b
            let rb = reference c b
            let ent = Reference.entropies rb
            let rl, rg =
                Reference.tokenLossAndGrad rb (fun j lp ->
                    let a = rb.Adv.[j / c.T]
                    Reference.clippedTerm (a + min (settings.Scale * ent.[j]) (abs a / settings.Kappa)) rb.Old.[j] lp)
            allClose "loss" 1e-10 1e-9 [| rl |] [| l |]
            allClose "gradient" 1e-10 1e-8 rg (toArray g))
    ]
