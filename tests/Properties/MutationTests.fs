/// The identities have teeth: deliberately broken SimKO constructions fail them. Each mutant is a
/// plausible mistake; the check that must catch it is named.
module SimKO.Tests.MutationTests

open Expecto
open TorchSharp
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.SimkoTests

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

let tests =
    testList "broken SimKO is caught" [
        testCase "without sg on log p[c_k] the gradient identity (7.2) fails" <| fun () ->
            use _ = torch.NewDisposeScope()
            Expect.isGreaterThan (gammaPosGradientDeviation noSgOnTopK case 0.3 3) 1e-4 "gradient deviation"
        testCase "without sg on gamma the gradient identity (7.2) fails" <| fun () ->
            use _ = torch.NewDisposeScope()
            Expect.isGreaterThan (gammaPosGradientDeviation noSgOnGamma case 0.3 3) 1e-4 "gradient deviation"
        testCase "smoothing with probabilities instead of ratios fails the value identity (7.1)" <| fun () ->
            use _ = torch.NewDisposeScope()
            Expect.isGreaterThan (gammaPosValueDeviation probabilityInsteadOfRatio case 0.3 3) 1e-4 "value deviation"
    ]
