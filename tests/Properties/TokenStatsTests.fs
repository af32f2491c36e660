/// SPEC §7.10: entropy from logits equals −Σ p log p within [0, log V]; Λ^(1) ≥ Λ^(2) ≥ Λ^(3);
/// the chunked statistics equal the unchunked ones.
module SimKO.Tests.TokenStatsTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.Checks

let tests =
    testList "TokenStats" [
        testPropertyWithConfig (config 100) "entropy equals -sum p log p and lies in [0, log V] (7.10)" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let stats = TokenStats.compute 3 b.Logits b.Tokens
            let rb = Batches.reference c b
            let expected =
                Array.init (c.B * c.T) (fun j -> Reference.entropyOf (Reference.logSoftmax (Array.sub rb.Logits (j * c.V) c.V)))
            let h = toArray stats.Entropy
            allClose "entropy" 1e-12 1e-10 expected h
            for x in h do
                Expect.isGreaterThanOrEqual x -1e-12 "H >= 0"
                Expect.isLessThanOrEqual x (log (float c.V) + 1e-12) "H <= log V")
        testPropertyWithConfig (config 100) "Lambda(1) >= Lambda(2) >= Lambda(3) (7.10)" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let stats = TokenStats.compute 3 b.Logits b.Tokens
            let l = TokenStats.lambdas stats b.Mask
            Expect.isGreaterThanOrEqual l.TopK.[0] l.TopK.[1] "Λ1 ≥ Λ2"
            Expect.isGreaterThanOrEqual l.TopK.[1] l.TopK.[2] "Λ2 ≥ Λ3"
            Expect.isGreaterThanOrEqual l.TopK.[0] l.Lambda "Λ1 ≥ Λ (the sampled token is never above the top-1)")
        testPropertyWithConfig (config 60) "chunked statistics equal the one-pass statistics" (fun (c: Case) (chunk: byte) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let chunk = 1 + int chunk % 4
            let a = TokenStats.compute 3 b.Logits b.Tokens
            let z = TokenStats.computeChunked chunk 3 b.Logits b.Tokens
            tensorsClose "log-probs" 0.0 0.0 a.LogProbs z.LogProbs
            tensorsClose "entropy" 0.0 0.0 a.Entropy z.Entropy
            tensorsClose "top-K log-probs" 0.0 0.0 a.TopKLogProbs z.TopKLogProbs
            Expect.isTrue (a.TopKIndices.Equals(z.TopKIndices)) "top-K indices")
        testCase "top-K larger than the vocabulary is an error naming both" <| fun () ->
            use _ = torch.NewDisposeScope()
            let logits = torch.zeros(1L, 1L, 4L)
            let tokens = torch.zeros([| 1L; 1L |], dtype = System.Nullable torch.ScalarType.Int64)
            Expect.throwsC (fun () -> TokenStats.compute 5 logits tokens |> ignore)
                (fun e -> Expect.stringContains e.Message "V = 4" "message names V")
        testCase "a mis-shaped tokens tensor is reported with both shapes" <| fun () ->
            use _ = torch.NewDisposeScope()
            let logits = torch.zeros(2L, 3L, 4L)
            let tokens = torch.zeros([| 2L; 2L |], dtype = System.Nullable torch.ScalarType.Int64)
            Expect.throwsC (fun () -> TokenStats.compute 1 logits tokens |> ignore)
                (fun e -> Expect.stringContains e.Message "[2; 2], expected [2; 3]" "message has both shapes")
    ]
