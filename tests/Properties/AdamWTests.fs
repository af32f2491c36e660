/// AdamW (Loshchilov and Hutter; src/SimKO.Host/Training/AdamW.cs) against its float64 formula over
/// several steps, with weight decay, bias correction and a changing learning rate.
module SimKO.Tests.AdamWTests

open Expecto
open TorchSharp
open SimKO.Host.Training
open SimKO.Tests.Checks

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
            allClose "parameters after 5 steps" 1e-13 1e-11 (Reference.adamW beta1 beta2 eps wd theta0 steps) (toArray p)
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
