/// SPEC §7.1–7.4: SimKO's value and gradient identities, against autograd, the plain reference and
/// central finite differences (float64).
module SimKO.Tests.ShapingTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.Checks
open SimKO.Tests.Batches

/// γ_pos built by a given function has the value of γ (identity 1) — returns the max deviation.
let gammaPosValueDeviation (gammaPos: float -> Tensor -> Tensor -> Tensor) (c: Case) (alpha: float) (k: int) =
    let b = build c
    let stats = TokenStats.compute (min k c.V) b.Logits b.Tokens
    let gamma = (stats.LogProbs - b.OldLogProbs).exp()
    let gp = gammaPos alpha gamma stats.TopKLogProbs
    value ((gp - gamma).abs().max())

/// Gradient of −A·γ_pos (one loss per token, summed) vs the closed form A·sg(γ)·G̃ (identity 2).
/// Returns the max absolute difference.
let gammaPosGradientDeviation (gammaPos: float -> Tensor -> Tensor -> Tensor) (c: Case) (alpha: float) (k: int) =
    let b = build c
    let k = min k c.V
    let leaf = b.Logits.detach().clone().requires_grad_(true)
    let stats = TokenStats.compute k leaf b.Tokens
    let gamma = (stats.LogProbs - b.OldLogProbs).exp()
    let adv = b.Advantages.unsqueeze(1L).expand_as(gamma)
    let l = (adv.neg() * gammaPos alpha gamma stats.TopKLogProbs).sum()
    l.backward()
    use _ = torch.no_grad()
    let p = leaf.detach().softmax(-1L)                                                   // [B; T; V]
    let eY = torch.nn.functional.one_hot(b.Tokens, int64 c.V).to_type(p.dtype)          // [B; T; V]
    let eTop = torch.zeros_like(p).scatter(-1L, stats.TopKIndices, torch.ones_like(stats.TopKLogProbs)) // Σ_k e_{c_k}
    let gTilde = p - (eY * (1.0 - alpha) + eTop * (alpha / float k))                     // G̃
    let expected = (adv * gamma.detach()).unsqueeze(-1L) * gTilde
    value ((leaf.grad - expected).abs().max())

let tests =
    testList "Shaping (SimKO)" [
        testPropertyWithConfig (config 100) "value of gamma_pos equals gamma (7.1)" (fun (c: Case) (alphaPct: byte) (k: byte) ->
            use _ = torch.NewDisposeScope()
            let alpha = float (alphaPct % 101uy) / 100.0
            let dev = gammaPosValueDeviation Shaping.gammaPos c alpha (1 + int k % 5)
            Expect.isLessThanOrEqual dev 1e-12 (sprintf "max |γ_pos − γ| = %g" dev))

        testPropertyWithConfig (config 100) "gradient of gamma_pos is A·sg(γ)·G̃ (7.2, autograd vs closed form)" (fun (c: Case) (alphaPct: byte) (k: byte) ->
            use _ = torch.NewDisposeScope()
            let alpha = float (alphaPct % 101uy) / 100.0
            let dev = gammaPosGradientDeviation Shaping.gammaPos c alpha (1 + int k % 5)
            Expect.isLessThanOrEqual dev 1e-10 (sprintf "max |∇ − A·sg(γ)·G̃| = %g" dev))

        testPropertyWithConfig (config 100) "SimKO loss and gradient equal the plain float[] reference, for any alpha, K, lambda, q and gate" (fun (s: SimkoCase) ->
            use _ = torch.NewDisposeScope()
            let b = build s.Case
            let l, g = lossAndGrad (simkoOf s) b
            let rl, rg = Reference.lossAndGrad (referenceOf s) (reference s.Case b)
            allClose (sprintf "loss with %A" s) 1e-10 1e-9 [| rl |] [| l |]
            allClose (sprintf "gradient with %A" s) 1e-10 1e-8 rg (toArray g))

        testPropertyWithConfig (config 100) "GRPO loss and gradient equal the plain float[] reference" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let l, g = lossAndGrad grpo b
            let rl, rg = Reference.lossAndGrad (referenceSettings 0.0 3 1.0 None) (reference c b)
            allClose "loss" 1e-10 1e-9 [| rl |] [| l |]
            allClose "gradient" 1e-10 1e-8 rg (toArray g))

        testPropertyWithConfig (config 30) "SimKO gradient equals finite differences of the smoothed surrogate (7.2), for any alpha, K, lambda, q and gate" (fun (s: SimkoCase) ->
            use _ = torch.NewDisposeScope()
            let b = build s.Case
            let _, g = lossAndGrad (simkoOf s) b
            let rb = reference s.Case b
            let fd = Reference.finiteDifferences 1e-6 (Reference.surrogate (referenceOf s) rb) rb.Logits
            allClose (sprintf "gradient vs finite differences with %A" s) 1e-7 1e-5 fd (toArray g))

        testCase "the generated SimKO settings include the paper's and the logic task's defaults" <| fun () ->
            let drawn = FsCheck.FSharp.Gen.sampleWithSeed (FsCheck.Rnd(seed, 0x9E3779B97F4A7C15UL)) 30 200 simkoCaseGen
            let has a k l q = drawn |> Array.exists (fun s -> s.Alpha = a && s.K = k && s.Lambda = l && s.Q = q)
            Expect.isTrue (has 0.01 3 1.1 0.8) "paper defaults α 0.01, K 3, λ 1.1, q 0.8"
            Expect.isTrue (has 0.005 3 1.05 0.8) "logic defaults α 0.005, λ 1.05"
            Expect.isTrue (drawn |> Array.exists (fun s -> s.BatchGate)) "a batch gate"
            Expect.isTrue (drawn |> Array.exists (fun s -> s.K = 1) && drawn |> Array.exists (fun s -> s.K = 5)) "K from 1 to 5"

        testPropertyWithConfig (config 30) "GRPO gradient equals finite differences of its loss" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let _, g = lossAndGrad grpo b
            let f (x: float[]) =
                use _ = torch.NewDisposeScope()
                let logits = torch.tensor(x, dtype = System.Nullable torch.ScalarType.Float64).reshape(b.Logits.shape)
                value (Objective.loss grpo (policyBatch b logits)).Loss
            let fd = Reference.finiteDifferences 1e-6 f (toArray b.Logits)
            allClose "gradient vs finite differences" 1e-7 1e-5 fd (toArray g))

        testPropertyWithConfig (config 60) "alpha = 0 gives GRPO's gradient on positive responses (7.3)" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let _, gs = lossAndGrad (simko 0.0 3 1.7 0.5) b
            let _, gg = lossAndGrad grpo b
            let positive = b.Advantages.gt(sc 0.0).to_type(gs.dtype).reshape(-1L, 1L, 1L)
            tensorsClose "gradient on A > 0 rows" 1e-12 1e-10 (gg * positive) (gs * positive))

        testPropertyWithConfig (config 60) "lambda = 1 gives GRPO's gradient on negative responses (7.3)" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let _, gs = lossAndGrad (simko 0.5 3 1.0 0.5) b
            let _, gg = lossAndGrad grpo b
            let negative = b.Advantages.lt(sc 0.0).to_type(gs.dtype).reshape(-1L, 1L, 1L)
            tensorsClose "gradient on A < 0 rows" 1e-12 1e-10 (gg * negative) (gs * negative))

        testPropertyWithConfig (config 60) "alpha = 0 and lambda = 1 give GRPO's loss and gradient (7.3)" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let ls, gs = lossAndGrad (simko 0.0 3 1.0 0.2) b
            let lg, gg = lossAndGrad grpo b
            allClose "loss" 1e-12 1e-12 [| lg |] [| ls |]
            tensorsClose "gradient" 1e-12 1e-10 gg gs)

        testPropertyWithConfig (config 60) "q = 1 gives GRPO's gradient for every token (7.3)" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build c
            let _, gs = lossAndGrad (simko 0.7 3 2.0 1.0) b
            let _, gg = lossAndGrad grpo b
            tensorsClose "gradient" 1e-12 1e-10 gg gs)

        testPropertyWithConfig (config 60) "gated negative top-1 tokens get lambda times GRPO's gradient, others GRPO's (7.4)" (fun (c: Case) ->
            use _ = torch.NewDisposeScope()
            let b = build { c with OffPolicy = 0.05 }
            let lambda = 1.6
            // q = 0 gates every valid token; α = 0 isolates the negative side.
            let _, gs = lossAndGrad (simko 0.0 3 lambda 0.0) b
            let _, gg = lossAndGrad grpo b
            let top1 = b.Tokens.eq(b.Logits.detach().argmax(-1L))
            let negative = b.Advantages.lt(sc 0.0).unsqueeze(1L).expand_as(top1)
            let pushed = top1.logical_and(negative).to_type(gs.dtype).unsqueeze(-1L)       // [B; T; 1]
            let scale = pushed * (lambda - 1.0) + 1.0
            tensorsClose "gradient" 1e-12 1e-10 (gg * scale) gs)
    ]
