/// Entropy gates (SPEC §3): the per-response and batch-level quantiles with linear interpolation
/// match a plain sort-based reference; q = 1 gates nothing, q = 0 gates every valid token; a
/// micro-batch handed its mini-batch's threshold is gated as the whole mini-batch is.
module SimKO.Tests.GatesTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.Checks

let tests =
    testList "Gates" [
        testPropertyWithConfig (config 100) "per-response gate equals the plain quantile reference" (fun (c: Case) (qPct: byte) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let q = float (qPct % 101uy) / 100.0
            let stats = TokenStats.compute 1 b.Logits b.Tokens
            let w = Gates.gate (Gates.ResponseQuantile q) None stats.Entropy b.Mask
            let rb = Batches.reference c b
            let expected = Reference.gates (Batches.referenceSettings 0.0 1 1.0 (Some q)) rb |> Array.map (fun g -> if g then 1.0 else 0.0)
            allClose "gate" 0.0 0.0 expected (toArray w))
        testPropertyWithConfig (config 100) "batch gate and its threshold equal a plain sort and linear interpolation over all valid tokens" (fun (c: Case) (qPct: byte) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let q = float (qPct % 101uy) / 100.0
            let stats = TokenStats.compute 1 b.Logits b.Tokens
            let rb = Batches.reference c b
            let ent = Reference.entropies rb
            let valid = [| for j in 0 .. ent.Length - 1 do if rb.Mask.[j] > 0.0 then yield ent.[j] |]
            // plain: sort, position q·(n − 1), interpolate; q = 0 means every valid token
            let sorted = Array.sort valid
            let pos = q * float (sorted.Length - 1)
            let lo = int (floor pos)
            let hi = min (lo + 1) (sorted.Length - 1)
            let tau = if q <= 0.0 then -infinity else sorted.[lo] + (sorted.[hi] - sorted.[lo]) * (pos - float lo)
            match Gates.batchThreshold (Gates.BatchQuantile q) stats.Entropy b.Mask with
            | Some t when q > 0.0 -> allClose "τ" 1e-12 1e-12 [| tau |] [| t |]
            | Some t -> Expect.equal t -infinity "q = 0: τ = −∞"
            | None -> failtest "a batch gate has a threshold"
            let expected = Array.init ent.Length (fun j -> if rb.Mask.[j] > 0.0 && ent.[j] > tau then 1.0 else 0.0)
            allClose "gate" 0.0 0.0 expected (toArray (Gates.gate (Gates.BatchQuantile q) None stats.Entropy b.Mask)))
        testPropertyWithConfig (config 100) "a micro-batch handed the mini-batch's threshold is gated as in the whole mini-batch" (fun (c: Case) (qPct: byte) (split: byte) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let g = Gates.BatchQuantile (float (qPct % 101uy) / 100.0)
            let stats = TokenStats.compute 1 b.Logits b.Tokens
            let whole = Gates.gate g None stats.Entropy b.Mask
            let tau = Gates.batchThreshold g stats.Entropy b.Mask
            let cut = 1L + int64 split % int64 c.B
            let rows (t: torch.Tensor) = t.narrow(0L, 0L, cut)
            tensorsClose "gate of the first micro-batch" 0.0 0.0 (rows whole) (Gates.gate g tau (rows stats.Entropy) (rows b.Mask)))
        testCase "the other gates have no batch threshold" <| fun () ->
            use _ = torch.NewDisposeScope()
            let h = torch.zeros(2L, 3L)
            for g in [ Gates.AllTokens; Gates.ResponseQuantile 0.5 ] do
                Expect.isNone (Gates.batchThreshold g h (torch.ones_like(h))) (sprintf "%A" g)
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
                Expect.equal (value ((Gates.gate g None stats.Entropy b.Mask).sum())) 0.0 (sprintf "%A" g)
            for g in [ Gates.ResponseQuantile 0.0; Gates.BatchQuantile 0.0; Gates.AllTokens ] do
                tensorsClose (sprintf "%A" g) 0.0 0.0 b.Mask (Gates.gate g None stats.Entropy b.Mask))
        testCase "q = 0.8 gates the top 20 % of a response's tokens" <| fun () ->
            use _ = torch.NewDisposeScope()
            let h = torch.arange(10.0, dtype = System.Nullable torch.ScalarType.Float64).unsqueeze(0L)
            let w = Gates.gate (Gates.ResponseQuantile 0.8) None h (torch.ones_like(h))
            allClose "gate" 0.0 0.0 [| 0.; 0.; 0.; 0.; 0.; 0.; 0.; 0.; 1.; 1. |] (toArray w)
    ]
