/// SPEC §7.8, §7.11: an objective evaluated micro-batch by micro-batch, each with its mini-batch's
/// normaliser and batch gate threshold, sums to the loss and gradient of the whole mini-batch, for
/// every method, every gate and every aggregation.
module SimKO.Tests.ObjectiveTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.Checks
open SimKO.Tests.Batches

/// Every gate: all tokens (GRPO, and methods without a gate), per response (SimKO), batch-level
/// (SimKO's option), top-ρ (forking, which also trains only on gated tokens).
let objectives : (string * Objective.Objective) list =
    let simko batchGate = Methods.Simko { Methods.simkoDefaults with Alpha = 0.2; Q = 0.5; BatchGate = batchGate }
    [ "grpo (all tokens)", Methods.Grpo { Common = Methods.commonDefaults }
      "simko (per-response gate)", simko false
      "simko (batch gate)", simko true
      "forking (top 20 % of the batch)", Methods.Forking { Common = Methods.commonDefaults; Q = 0.8 }
      "entropy-adv", Methods.EntropyAdv { Common = Methods.commonDefaults; EntropyAdv = { Scale = 0.4; Kappa = 2.0 } }
      "dr-grpo", Methods.DrGrpo { Common = { Methods.commonDefaults with Aggregation = Aggregation.SeqMeanTokenSumNorm 7.0 }; MaxLength = 7.0 } ]
    |> List.map (fun (n, m) -> n, Methods.objective m)

/// Up to two cut points inside 1..B−1 (none when B = 1).
let cutsOf (b: int) (x: byte) (y: byte) =
    if b < 2 then []
    else [ 1L + int64 x % int64 (b - 1); 1L + int64 y % int64 (b - 1) ] |> List.distinct |> List.sort

let tests =
    testList "Objective" [
        let cases =
            [ for name, o in objectives do
                match o.Aggregation with
                | Aggregation.SeqMeanTokenSumNorm _ -> yield name, o
                | _ -> for agg in [ Aggregation.TokenMean; Aggregation.SeqMeanTokenMean ] -> name, { o with Aggregation = agg } ]
        for name, o in cases do
            testPropertyWithConfig (config 40) (sprintf "%s, %s: micro-batch gradients with the mini-batch's context (counts, threshold, KL-Cov statistics) sum to the whole batch's (7.8, 7.11)" name (Aggregation.name o.Aggregation)) (fun (c: Case) (x: byte) (y: byte) ->
                use _ = torch.NewDisposeScope()
                let b = build c
                let full, gFull = lossAndGrad o b
                let parts, gParts = microBatchLossAndGrad o b (cutsOf c.B x y) (contextOf o b)
                allClose "loss" 1e-12 1e-10 [| full |] [| parts |]
                tensorsClose "gradient" 1e-12 1e-10 gFull gParts)
    ]
