/// The identities have teeth: deliberately broken constructions fail them. Each mutant is a
/// plausible mistake; the check that must catch it is named.
module SimKO.Tests.MutationTests

open Expecto
open TorchSharp
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.ShapingTests
open SimKO.Tests.Batches
open SimKO.Tests.Checks
open SimKO.Math

/// No stop-gradient on log p[c_k]: exp(lp − lp) is the constant 1, the top-K part loses its gradient.
let noSgOnTopK (alpha: float) (gamma: Tensor) (topK: Tensor) =
    let k = float topK.shape[2]
    gamma * (1.0 - alpha) + (sg(gamma).unsqueeze(-1L) * (topK - topK).exp()).sum(-1L) * (alpha / k)

/// No stop-gradient on γ inside the smoothing term: γ's own gradient leaks into every candidate.
let noSgOnGamma (alpha: float) (gamma: Tensor) (topK: Tensor) =
    let k = float topK.shape[2]
    gamma * (1.0 - alpha) + (gamma.unsqueeze(-1L) * (topK - sg topK).exp()).sum(-1L) * (alpha / k)

/// Smoothing with the candidates' probabilities themselves: changes the value (not a ratio).
let probabilityInsteadOfRatio (alpha: float) (gamma: Tensor) (topK: Tensor) =
    let k = float topK.shape[2]
    gamma * (1.0 - alpha) + topK.exp().sum(-1L) * (alpha / k)

let private case = { Groups = 2; G = 3; T = 4; V = 6; Scale = 1.0; OffPolicy = 0.1; Seed = 11L }

/// Largest |difference| between the whole batch's gradient and the summed micro-batch gradients
/// (cut after row 2 and row 4) when each micro-batch gets the context `contextFor b rows`.
let private microBatchDeviationWith (o: Objective.Objective) (contextFor: Built -> (Tensor -> Tensor) -> int64 -> int64 -> Objective.MiniBatchContext) =
    let b = build { Groups = 2; G = 3; T = 6; V = 7; Scale = 1.0; OffPolicy = 0.1; Seed = 5L }
    let _, whole = lossAndGrad o b
    let leaf = b.Logits.detach().clone().requires_grad_(true)
    let total =
        [ 0L, 2L; 2L, 2L; 4L, 2L ] |> List.map (fun (start, len) ->
            let rows (t: Tensor) = t.narrow(0L, start, len)
            (Objective.loss o { Logits = rows leaf; Tokens = rows b.Tokens; OldLogProbs = rows b.OldLogProbs; RefLogProbs = None
                                Mask = rows b.Mask; Advantages = rows b.Advantages
                                Context = contextFor b rows start len }).Loss)
        |> List.reduce (+)
    total.backward()
    value ((leaf.grad - whole).abs().max())

/// `microBatchDeviationWith` where each micro-batch gets the normaliser of its own rows
/// (`perMicroBatch`) or of the whole batch, and the gate threshold `tau`.
let private microBatchDeviation (o: Objective.Objective) (perMicroBatch: bool) (tau: Tensor -> float option) =
    microBatchDeviationWith o (fun b rows _ _ ->
        { Objective.selfContext (if perMicroBatch then rows b.Mask else b.Mask) with BatchThreshold = tau (rows b.Mask) })

let private forking = Methods.objective (Methods.Forking { Common = Methods.commonDefaults; Q = 0.8 })

let tests =
    testList "broken constructions are caught" [
        testCase "without sg on log p[c_k] the gradient identity (7.2) fails" <| fun () ->
            use _ = torch.NewDisposeScope()
            Expect.isGreaterThan (gammaPosGradientDeviation noSgOnTopK case 0.3 3) 1e-4 "gradient deviation"
        testCase "without sg on gamma the gradient identity (7.2) fails" <| fun () ->
            use _ = torch.NewDisposeScope()
            Expect.isGreaterThan (gammaPosGradientDeviation noSgOnGamma case 0.3 3) 1e-4 "gradient deviation"
        testCase "smoothing with probabilities instead of ratios fails the value identity (7.1)" <| fun () ->
            use _ = torch.NewDisposeScope()
            Expect.isGreaterThan (gammaPosValueDeviation probabilityInsteadOfRatio case 0.3 3) 1e-4 "value deviation"
        testCase "a batch gate taken per micro-batch moves the gradient (the micro-batch invariance of 7.11 catches it)" <| fun () ->
            use _ = torch.NewDisposeScope()
            let b = build { Groups = 2; G = 3; T = 6; V = 7; Scale = 1.0; OffPolicy = 0.1; Seed = 5L }
            let tau = batchThresholdOf forking b
            Expect.isLessThan (microBatchDeviation forking false (fun _ -> tau)) 1e-12 "with the mini-batch's threshold"
            Expect.isGreaterThan (microBatchDeviation forking false (fun _ -> None)) 1e-4 "with each micro-batch's own threshold"
        testCase "KL-Cov selecting per micro-batch (its own means and top-k cut) moves the gradient (the micro-batch invariance of 7.11 catches it)" <| fun () ->
            use _ = torch.NewDisposeScope()
            let o = Methods.objective (Methods.KlCov { Common = Methods.commonDefaults; KlCov = { Ratio = 0.2; Coef = 1.0 } })
            let miniBatch b (_: Tensor -> Tensor) (start: int64) (len: int64) = { contextOf o b with Rows = Some [| start .. start + len - 1L |] }
            let perMicro (b: Built) (_: Tensor -> Tensor) (_: int64) (_: int64) = Objective.selfContext b.Mask     // KlCov = None: the micro-batch's own
            Expect.isLessThan (microBatchDeviationWith o miniBatch) 1e-12 "with the mini-batch's means and cut-off"
            Expect.isGreaterThan (microBatchDeviationWith o perMicro) 1e-4 "with each micro-batch's own means and cut-off"
        testCase "micro-batch losses averaged (each normalised by its own token count) move the gradient (7.8 catches it)" <| fun () ->
            use _ = torch.NewDisposeScope()
            let o = simko 0.2 3 1.3 0.5
            Expect.isLessThan (microBatchDeviation o false (fun _ -> None)) 1e-12 "with the mini-batch's counts"
            Expect.isGreaterThan (microBatchDeviation o true (fun _ -> None)) 1e-4 "with each micro-batch's own counts"
        testCase "Dr. GRPO with its sign flipped fails its formula" <| fun () ->
            let rewards = [| 1.0; 0.0; 0.0; 1.0; 1.0; 0.0 |]
            let flipped = Reference.Advantages.drGrpo 3 rewards |> Array.map (fun a -> -a)
            let ours = toArray (Advantages.compute (Advantages.GroupNormalised false) 3 (torch.tensor rewards))
            Expect.isGreaterThan (Array.map2 (fun a b -> abs (a - b)) flipped ours |> Array.max) 0.1 "a sign error is visible"
        testCase "AdamW without bias correction fails the float64 formula" <| fun () ->
            // the formula's first step moves each weight by ≈ lr (m̂/√v̂ = ±1); without 1/(1−β^t) it moves (1−β1)/√(1−β2) lr
            let theta0 = [| 0.5; -0.5 |]
            let g = [| 0.2; -3.0 |]
            let withCorrection = Reference.adamW 0.9 0.999 1e-8 0.0 theta0 [ 0.1, g ]
            let step = withCorrection |> Array.map2 (fun a b -> abs (a - b)) theta0
            allClose "first step ≈ lr" 1e-6 0.0 [| 0.1; 0.1 |] step
            let uncorrected = theta0 |> Array.mapi (fun j t -> t - 0.1 * (0.1 * g.[j]) / (sqrt (0.001 * g.[j] * g.[j]) + 1e-8))
            Expect.isGreaterThan (Array.map2 (fun a b -> abs (a - b)) withCorrection uncorrected |> Array.max) 1e-3 "uncorrected differs"
    ]
