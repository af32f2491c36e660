/// Entropy gates (SPEC §3): the per-response quantile with linear interpolation matches a plain
/// sort-based reference; q = 1 gates nothing, q = 0 gates every valid token.
module SimKO.Tests.GateTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.Checks

let tests =
    testList "entropy gate" [
        testPropertyWithConfig (config 100) "per-response gate equals the plain quantile reference" (fun (c: Case) (qPct: byte) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let q = float (qPct % 101uy) / 100.0
            let stats = TokenStats.compute 1 b.Logits b.Tokens
            let w = Gates.gate (Gates.ResponseQuantile q) stats.Entropy b.Mask
            let rb = Batches.reference c b
            let expected = Reference.gates (Batches.referenceSettings 0.0 1 1.0 (Some q)) rb |> Array.map (fun g -> if g then 1.0 else 0.0)
            allClose "gate" 0.0 0.0 expected (toArray w))
        testPropertyWithConfig (config 100) "row quantile equals torch.quantile on full rows" (fun (c: Case) (qPct: byte) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let q = float (qPct % 101uy) / 100.0
            let x = b.Logits.detach().reshape(-1L, int64 c.V)
            let ours = Gates.rowQuantile q x (torch.ones_like(x))
            let theirs = torch.quantile(x, torch.tensor(q, dtype = System.Nullable torch.ScalarType.Float64), 1L, false)
            tensorsClose "quantile" 1e-12 1e-12 theirs ours)
        testPropertyWithConfig (config 60) "q = 1 gates nothing and q = 0 gates every valid token" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let stats = TokenStats.compute 1 b.Logits b.Tokens
            for g in [ Gates.ResponseQuantile 1.0; Gates.BatchQuantile 1.0 ] do
                Expect.equal (value ((Gates.gate g stats.Entropy b.Mask).sum())) 0.0 (sprintf "%A" g)
            for g in [ Gates.ResponseQuantile 0.0; Gates.BatchQuantile 0.0; Gates.AllTokens ] do
                tensorsClose (sprintf "%A" g) 0.0 0.0 b.Mask (Gates.gate g stats.Entropy b.Mask))
        testCase "q = 0.8 gates the top 20 % of a response's tokens" <| fun () ->
            use _ = torch.NewDisposeScope()
            let h = torch.arange(10.0, dtype = System.Nullable torch.ScalarType.Float64).unsqueeze(0L)
            let w = Gates.gate (Gates.ResponseQuantile 0.8) h (torch.ones_like(h))
            allClose "gate" 0.0 0.0 [| 0.; 0.; 0.; 0.; 0.; 0.; 0.; 0.; 1.; 1. |] (toArray w)
    ]
