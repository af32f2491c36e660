/// SPEC §7.5: masked (padding/prompt) tokens never change the loss or the gradient.
module SimKO.Tests.MaskTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Tests.Generators
open SimKO.Tests.Checks
open SimKO.Tests.Batches

let private scramble (c: Case) (b: Built) : Built =
    let gen = new torch.Generator(uint64 (c.Seed + 7L))
    let f64 = System.Nullable torch.ScalarType.Float64
    let outside = b.Mask.lt(sc 0.5)                                                        // [B; T]
    let noise = torch.randn(b.Logits.shape, f64, generator = gen) * 50.0
    let logits = torch.where(outside.unsqueeze(-1L), noise, b.Logits.detach())
    let tokens = torch.where(outside, torch.randint(int64 c.V, b.Tokens.shape, generator = gen), b.Tokens)
    let old = torch.where(outside, torch.randn(b.OldLogProbs.shape, f64, generator = gen) * 100.0, b.OldLogProbs)
    { b with Logits = logits.requires_grad_(true); Tokens = tokens; OldLogProbs = old }

let tests =
    testList "masking" [
        for name, objective in [ "grpo", grpo; "simko", simko 0.3 3 1.4 0.5; "simko batch gate",
                                 { simko 0.3 3 1.4 0.5 with Gate = Gates.BatchQuantile 0.5 } ] ->
            testPropertyWithConfig (config 60) (sprintf "masked tokens never change the loss or the gradient (7.5, %s)" name) (fun (c: Case) ->
                use _ = torch.NewDisposeScope()
                let b = build c
                let l1, g1 = lossAndGrad objective b
                let l2, g2 = lossAndGrad objective (scramble c b)
                allClose "loss" 1e-12 1e-12 [| l1 |] [| l2 |]
                let valid = b.Mask.unsqueeze(-1L)
                tensorsClose "gradient on valid tokens" 1e-12 1e-12 (g1 * valid) (g2 * valid)
                let leaked = value ((g2 * (1.0 - valid)).abs().max())
                Expect.equal leaked 0.0 "gradient reaching masked positions")
    ]
