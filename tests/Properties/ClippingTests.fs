/// SPEC §7.7: outside the trust region on the side the advantage pushes towards, PPO's clip
/// leaves no gradient — for GRPO and for SimKO (whose ratio has the value of γ).
module SimKO.Tests.ClippingTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.Checks
open SimKO.Tests.Batches

/// Set old log-probs so that γ = exp(shift) on every token, with shift's sign tied to A's.
let private withRatio (b: Built) (shiftForPositive: float) (shiftForNegative: float) =
    let logp = b.Logits.detach().log_softmax(-1L).gather(-1L, b.Tokens.unsqueeze(-1L)).squeeze(-1L)
    let positive = b.Advantages.gt(sc 0.0).unsqueeze(1L).expand_as(logp)
    let shift = torch.where(positive, torch.full_like(logp, sc shiftForPositive), torch.full_like(logp, sc shiftForNegative))
    { b with OldLogProbs = logp - shift }

let tests =
    testList "Clipping" [
        for name, objective in [ "grpo", grpo; "simko", simko 0.5 3 1.5 0.0 ] do
            testPropertyWithConfig (config 60) (sprintf "A > 0 and gamma > 1+eps, or A < 0 and gamma < 1-eps, give zero gradient (7.7, %s)" name) (fun (c: Case) ->
                use _ = torch.NewDisposeScope()
                let b = withRatio (build c) (log 1.3) (log 0.7)           // ε = 0.2 both sides
                let _, g = lossAndGrad objective b
                Expect.equal (value (g.abs().max())) 0.0 "gradient of fully clipped batch")
        testPropertyWithConfig (config 60) "inside the trust region nothing is clipped" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = withRatio (build c) (log 1.1) (log 0.9)
            let out = Objective.loss grpo (policyBatch b b.Logits)
            Expect.equal out.Metrics.ClipFraction 0.0 "clip fraction")
        testCase "dual clip caps the loss of negative advantages at -A·c" <| fun () ->
            use _ = torch.NewDisposeScope()
            let ratio = torch.tensor([| 5.0; 0.5; 1.0 |])
            let adv = torch.tensor([| -1.0; -1.0; 2.0 |])
            let out = Clipping.surrogate { Clipping.defaults with Dual = Some 3.0 } ratio adv
            allClose "loss" 1e-12 0.0 [| 3.0; 0.8; -2.0 |] (toArray out.Loss)
    ]
