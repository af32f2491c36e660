/// KL(π_θ ‖ π_ref) estimators (SPEC §2): k1, k2, k3 on hand-checked values, and the KL-penalised
/// objective's loss and gradient against the plain reference for every estimator.
module SimKO.Tests.KlPenaltyTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.Checks
open SimKO.Tests.Batches

/// Reference log-probs [B; T]: the old ones moved by seeded noise, NaN where the mask is 0 (they
/// must never be read there).
let private refLogProbs (c: Case) (b: Built) =
    let gen = new torch.Generator(uint64 c.Seed + 1UL)
    let moved = b.OldLogProbs + torch.randn(b.OldLogProbs.shape, dtype = System.Nullable torch.ScalarType.Float64, generator = gen) * 0.4
    torch.where(b.Mask.gt(sc 0.0), moved, torch.full_like(moved, sc nan))

let tests =
    testList "KlPenalty" [
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
            let r = torch.where(b.Mask.gt(sc 0.0), refLogProbs c b, b.OldLogProbs)
            let k3 = KlPenalty.estimate KlPenalty.K3 b.OldLogProbs r
            Expect.isGreaterThanOrEqual (value (k3.min())) 0.0 "min k3")
        for name, estimator in [ "k1", KlPenalty.K1; "k2", KlPenalty.K2; "k3", KlPenalty.K3 ] do
            testPropertyWithConfig (config 60) (sprintf "GRPO + beta·%s to a reference policy: loss and gradient equal the plain reference" name) (fun (c: Case) ->
                use _ = torch.NewDisposeScope()
                let b = build c
                let beta = 0.3
                let o = { grpo with Kl = { Beta = beta; Estimator = estimator } }
                let r = refLogProbs c b
                let leaf = b.Logits.detach().clone().requires_grad_(true)
                let out = Objective.loss o { policyBatch b leaf with RefLogProbs = Some r }
                out.Loss.backward()
                let rb = reference c b
                let refs = toArray r
                let expectedLoss, expectedGrad =
                    Reference.tokenLossAndGrad rb (fun j logp ->
                        let v1, s1 = Reference.clippedTerm rb.Adv.[j / c.T] rb.Old.[j] logp
                        let v2, s2 = Reference.klTerm name (logp - refs.[j])
                        v1 + beta * v2, s1 + beta * s2)
                allClose "loss" 1e-10 1e-9 [| expectedLoss |] [| value out.Loss |]
                allClose "gradient" 1e-10 1e-8 expectedGrad (toArray leaf.grad)
                Expect.isGreaterThan (abs out.Metrics.KlRef) 0.0 "the KL term ran")
        testCase "kl_beta > 0 without reference log-probs is an error that says so" <| fun () ->
            use _ = torch.NewDisposeScope()
            let b = build { Groups = 1; G = 2; T = 3; V = 4; Scale = 1.0; OffPolicy = 0.0; Seed = 2L }
            let o = { grpo with Kl = { Beta = 0.1; Estimator = KlPenalty.K3 } }
            Expect.throwsC (fun () -> Objective.loss o (policyBatch b b.Logits) |> ignore)
                (fun e -> Expect.stringContains e.Message "reference" "names what is missing")
    ]
