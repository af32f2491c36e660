/// SPEC §7.8: with the global normaliser, micro-batch losses and gradients add up to the full
/// batch's, for every aggregation.
module SimKO.Tests.AggregationTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Math.Objective
open SimKO.Tests.Generators
open SimKO.Tests.Checks
open SimKO.Tests.Batches

let tests =
    testList "Aggregation" [
        for agg in [ Aggregation.TokenMean; Aggregation.SeqMeanTokenMean; Aggregation.SeqMeanTokenSumNorm 7.0 ] do
            testPropertyWithConfig (config 60) (sprintf "%s over micro-batches with the global count equals the full batch (7.8)" (Aggregation.name agg)) (fun (c: Case) (split: byte) ->
                use _ = torch.NewDisposeScope()
                let b = build c
                let o = { simko 0.2 3 1.3 0.5 with Aggregation = agg }
                let full, gFull = lossAndGrad o b
                let norm = Aggregation.selfNormaliser b.Mask
                let cut = 1L + int64 split % int64 c.B                                    // 1..B rows in the first part
                let leaf = b.Logits.detach().clone().requires_grad_(true)
                let part (start: int64) (len: int64) =
                    let rows (t: torch.Tensor) = t.narrow(0L, start, len)
                    (loss o { Logits = rows leaf; Tokens = rows b.Tokens; OldLogProbs = rows b.OldLogProbs
                              RefLogProbs = None; Mask = rows b.Mask; Advantages = rows b.Advantages
                              Context = { Objective.selfContext b.Mask with Normaliser = norm } }).Loss
                let total =
                    if cut = int64 c.B then part 0L cut
                    else part 0L cut + part cut (int64 c.B - cut)
                total.backward()
                allClose "loss" 1e-12 1e-10 [| full |] [| value total |]
                tensorsClose "gradient" 1e-12 1e-10 gFull leaf.grad)
        testCase "token-mean divides by the global token count, not the micro-batch's" <| fun () ->
            use _ = torch.NewDisposeScope()
            let l = torch.tensor([| 1.0; 2.0; 3.0; 4.0 |]).reshape(2L, 2L)
            let m = torch.tensor([| 1.0; 1.0; 1.0; 0.0 |]).reshape(2L, 2L)
            let v = Aggregation.aggregate Aggregation.TokenMean { GlobalTokens = 10.0; GlobalSequences = 4.0 } l m
            allClose "loss" 1e-12 0.0 [| 0.6 |] [| value v |]
    ]
