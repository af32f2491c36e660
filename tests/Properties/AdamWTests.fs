/// AdamW (Loshchilov and Hutter; src/SimKO.Host/Training/AdamW.cs) against its float64 formula over
/// several steps, with weight decay, bias correction and a changing learning rate.
module SimKO.Tests.AdamWTests

open Expecto
open TorchSharp
open SimKO.Host.Training
open SimKO.Tests.Checks

/// The plain update of one parameter vector: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
/// θ ← θ·(1 − lr·wd) − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + ε).
let reference (beta1: float) (beta2: float) (eps: float) (wd: float) (theta0: float[]) (steps: (float * float[]) list) =
    let theta = Array.copy theta0
    let m = Array.zeroCreate theta.Length
    let v = Array.zeroCreate theta.Length
    steps |> List.iteri (fun i (lr, g) ->
        let t = float (i + 1)
        for j in 0 .. theta.Length - 1 do
            m.[j] <- beta1 * m.[j] + (1.0 - beta1) * g.[j]
            v.[j] <- beta2 * v.[j] + (1.0 - beta2) * g.[j] * g.[j]
            let mHat = m.[j] / (1.0 - beta1 ** t)
            let vHat = v.[j] / (1.0 - beta2 ** t)
            theta.[j] <- theta.[j] * (1.0 - lr * wd) - lr * mHat / (sqrt vHat + eps))
    theta

let tests =
    testList "AdamW" [
        testCase "five steps with weight decay equal the float64 formula with bias correction" <| fun () ->
            use _ = torch.NewDisposeScope()
            let rng = System.Random(7)
            let n = 6
            let theta0 = Array.init n (fun _ -> rng.NextDouble() * 2.0 - 1.0)
            // gradients of varied scale and sign, learning rates that change (a warm-up)
            let steps = [ for s in 1 .. 5 -> 1e-2 * float s / 5.0, Array.init n (fun _ -> (rng.NextDouble() - 0.3) * 10.0 ** float (rng.Next(-3, 2))) ]
            let p = new TorchSharp.Modules.Parameter(torch.tensor(theta0))
            let beta1, beta2, eps, wd = 0.9, 0.95, 1e-8, 0.1
            let opt = AdamW([| struct ("p", p :> torch.Tensor) |], beta1, beta2, eps, wd)
            for lr, g in steps do
                opt.ZeroGrad()
                // a loss whose gradient is g
                (p * torch.tensor(g)).sum().backward()
                opt.Step lr
            Expect.equal opt.Steps 5L "steps counted"
            allClose "parameters after 5 steps" 1e-13 1e-11 (reference beta1 beta2 eps wd theta0 steps) (toArray p)
        testCase "the state (moments and step count) restores and continues bit for bit" <| fun () ->
            use _ = torch.NewDisposeScope()
            let make () = new TorchSharp.Modules.Parameter(torch.tensor([| 0.5; -0.25; 1.0 |]))
            let g = [| 0.3; -2.0; 0.01 |]
            let stepWith (opt: AdamW) (p: TorchSharp.Modules.Parameter) =
                opt.ZeroGrad()
                (p * torch.tensor(g)).sum().backward()
                opt.Step 0.1
            let p1 = make ()
            let o1 = AdamW([| struct ("p", p1 :> torch.Tensor) |], 0.9, 0.99, 1e-8, 0.01)
            for _ in 1 .. 3 do stepWith o1 p1
            let p2 = make ()
            let o2 = AdamW([| struct ("p", p2 :> torch.Tensor) |], 0.9, 0.99, 1e-8, 0.01)
            for _ in 1 .. 2 do stepWith o2 p2
            let p3 = new TorchSharp.Modules.Parameter(p2.detach().clone())
            let o3 = AdamW([| struct ("p", p3 :> torch.Tensor) |], 0.9, 0.99, 1e-8, 0.01)
            o3.Load(o2.State(), "test")
            stepWith o3 p3
            Expect.isTrue (p1.Equals p3) "3 steps = 2 steps + restore + 1 step"
    ]
