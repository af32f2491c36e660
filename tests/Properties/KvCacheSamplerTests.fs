/// The sampler's token choice (src/SimKO.Host/Rollout/KvCacheSampler.cs `Sample`): the sampled
/// distribution is the softmax of logits/temperature restricted to the top-k, then to the top-p
/// nucleus, renormalised — checked on small vocabularies against a float64 computation: the log-probs
/// it returns, the support (no token outside it ever appears) and the frequencies.
module SimKO.Tests.KvCacheSamplerTests

open Expecto
open TorchSharp
open SimKO.Host.Training
open SimKO.Host.Rollout
open SimKO.Tests.Checks

/// The filtered, renormalised distribution in float64: temperature, then top-k (ties with the
/// k-th value kept), then top-p (a token stays when the mass before it, in descending order, is at
/// most p). Returns log-probs, −∞ outside the support.
let reference (logits: float[]) (temperature: float) (topK: int) (topP: float) =
    let z = logits |> Array.map (fun x -> x / temperature)
    let v = z.Length
    let kept =
        if topK > 0 && topK < v then
            let kth = (Array.sortDescending z).[topK - 1]
            z |> Array.map (fun x -> x >= kth)
        else Array.create v true
    let renormalise (keep: bool[]) =
        let m = Array.max [| for i in 0 .. v - 1 do if keep.[i] then yield z.[i] |]
        let total = Seq.sum [ for i in 0 .. v - 1 do if keep.[i] then yield exp (z.[i] - m) ]
        Array.init v (fun i -> if keep.[i] then z.[i] - m - log total else -infinity)
    let afterK = renormalise kept
    if topP < 1.0 then
        let order = Array.init v id |> Array.sortByDescending (fun i -> afterK.[i])
        let nucleus = Array.create v false
        let mutable before = 0.0
        for i in order do
            if kept.[i] && before <= topP then nucleus.[i] <- true
            before <- before + (if kept.[i] then exp afterK.[i] else 0.0)
        renormalise nucleus
    else afterK

/// Settings on a small grid, and a seed for the logits and the sampler.
type SamplerCase = { V: int; Temperature: float; TopK: int; TopP: float; Seed: int }

let private caseGen =
    FsCheck.FSharp.Gen.map5 (fun v t k p s -> { V = v; Temperature = t; TopK = k % (v + 1); TopP = p; Seed = s })
        (FsCheck.FSharp.Gen.choose (2, 8))
        (FsCheck.FSharp.Gen.elements [ 0.3; 0.6; 1.0; 1.7 ])
        (FsCheck.FSharp.Gen.choose (0, 8))
        (FsCheck.FSharp.Gen.elements [ 1.0; 0.95; 0.8; 0.5; 0.1 ])
        (FsCheck.FSharp.Gen.choose (0, 1_000_000))

let tests =
    testSequenced <| testList "KvCacheSampler" [
        testPropertyWithConfig { Generators.config 25 with arbitrary = [] } "sampled tokens and their log-probs follow the filtered, renormalised softmax" <|
            FsCheck.FSharp.Prop.forAll (FsCheck.FSharp.Arb.fromGen caseGen) (fun c ->
                use _ = torch.NewDisposeScope()
                let gen = new torch.Generator(uint64 c.Seed)
                let row = torch.randn([| 1L; int64 c.V |], generator = gen) * 2.0                        // float32, as the sampler gets them
                let logits = row.to_type(torch.ScalarType.Float64).data<float>().ToArray()
                let expected = reference logits c.Temperature c.TopK c.TopP
                let n = 8_000
                let request = GenerateRequest([| [| 1 |] |], 1, c.Temperature, c.TopP, c.TopK, 1, 0L)
                let struct (tokens, logp) = KvCacheSampler.Sample(row.expand(int64 n, int64 c.V).contiguous(), request, gen)
                let tokens = tokens.data<int64>().ToArray() |> Array.map int
                let logp = logp.to_type(torch.ScalarType.Float64).data<float>().ToArray()
                for i in 0 .. n - 1 do
                    if System.Double.IsNegativeInfinity expected.[tokens.[i]] then
                        failtestf "token %d is outside the support %A (case %A)" tokens.[i] expected c
                allClose (sprintf "log-prob of each sampled token (case %A)" c) 2e-5 1e-5 (tokens |> Array.map (fun t -> expected.[t])) logp
                // frequencies within 5 standard errors (+ 1/n): a fixed seed makes this exact, not flaky
                let counts = Array.zeroCreate c.V
                for t in tokens do counts.[t] <- counts.[t] + 1
                for v in 0 .. c.V - 1 do
                    let p = exp expected.[v]
                    let f = float counts.[v] / float n
                    let bound = 5.0 * sqrt (p * (1.0 - p) / float n) + 1.0 / float n
                    if abs (f - p) > bound then
                        failtestf "token %d: frequency %g, probability %g, bound %g (case %A)" v f p bound c)
        testCase "the reference filters as documented on a hand-checked row" <| fun () ->
            // probabilities ∝ e^[3, 2, 1, 0] = 0.644, 0.237, 0.087, 0.032
            let l = [| 1.0; 3.0; 0.0; 2.0 |]
            let support (lp: float[]) = lp |> Array.map (fun x -> not (System.Double.IsNegativeInfinity x))
            Expect.equal (support (reference l 1.0 2 1.0)) [| false; true; false; true |] "top-2"
            Expect.equal (support (reference l 1.0 0 0.7)) [| false; true; false; true |] "top-p 0.7 keeps the token that crosses it"
            Expect.equal (support (reference l 1.0 0 0.5)) [| false; true; false; false |] "top-p 0.5: the first token already crosses"
            allClose "top-2 renormalised" 1e-12 0.0 [| 1.0 / (1.0 + exp -1.0) |] [| exp (reference l 1.0 2 1.0).[1] |]
    ]
