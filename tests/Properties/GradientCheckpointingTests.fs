/// Gradient checkpointing per decoder layer (issue 12): the gradients of every parameter equal the
/// ones without checkpointing (fp32, relative 1e-6), the layer really runs again in backward, and
/// evaluation (no gradient) is unaffected.
module SimKO.Tests.GradientCheckpointingTests

open System
open Expecto
open TorchSharp
open SimKO.Host.Model
open SimKO.Tests.Checks

/// Gradients by parameter name of Σ logits · r for a left-padded batch, checkpointing on or off.
let private gradients (m: CausalLM) (checkpointing: bool) =
    m.GradientCheckpointing <- checkpointing
    for struct (_, p) in m.NamedParameters() do
        if not (isNull p.grad) then p.grad.zero_() |> ignore
    use _ = torch.NewDisposeScope()
    let gen = new torch.Generator(99UL)
    let ids = torch.randint(20L, [| 3L; 7L |], generator = gen)
    let mask = torch.ones_like(ids)
    mask.[0L, 0L] <- torch.tensor(0L)                                     // one left-padded row
    let r = torch.randn([| 3L; 7L; 20L |], generator = gen)
    let logits = m.Forward(ids, mask, CausalLM.PositionsFromMask mask)
    (logits * r).sum().backward()
    [ for struct (name, p) in m.NamedParameters() -> name, p.grad.detach().clone().DetachFromDisposeScope() ]

let tests =
    testSequenced <| testList "gradient checkpointing" [
        for kv, tied in [ 4, true; 2, false ] do
            testCase (sprintf "checkpointed gradients equal plain gradients for every parameter (kv heads %d, tied %b)" kv tied) <| fun () ->
                let cfg = ModelConfig("qwen2", 20, 32, 64, 3, 4, kv, 1e-6, 10000.0, tied, true, 64)
                use m = new CausalLM(cfg)
                m.InitWeights(7L)
                let plain = gradients m false
                let checkpointed = gradients m true
                Expect.equal (List.map fst checkpointed) (List.map fst plain) "same parameters"
                for (name, a), (_, b) in List.zip plain checkpointed do
                    let scale = a.abs().max().item<float32>() |> float
                    Expect.isGreaterThan scale 0.0 (sprintf "%s has a gradient" name)
                    allClose name (1e-6 * scale) 1e-6 (toArray a) (toArray b)
        testCase "the layer runs again in backward (only its input was kept)" <| fun () ->
            use _ = torch.NewDisposeScope()
            let mutable calls = 0
            let w = torch.randn(4L, 4L).requires_grad_(true)
            let x = torch.randn(2L, 4L).requires_grad_(true)
            let layer = Func<torch.Tensor, torch.Tensor>(fun h -> calls <- calls + 1; h.matmul(w).tanh())
            let y = LayerCheckpoint.Apply(layer, x)
            Expect.equal calls 1 "forward ran once"
            y.sum().backward()
            Expect.equal calls 2 "backward recomputed the layer"
            let x2 = x.detach().clone().requires_grad_(true)
            let w2 = w.detach().clone().requires_grad_(true)
            x2.matmul(w2).tanh().sum().backward()
            tensorsClose "d/dx" 1e-7 1e-6 x2.grad x.grad
            tensorsClose "d/dw" 1e-7 1e-6 w2.grad w.grad
        testCase "without gradient, checkpointing changes nothing (evaluation and rollout)" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            let cfg = ModelConfig("qwen2", 20, 32, 64, 2, 4, 2, 1e-6, 10000.0, true, true, 64)
            use m = new CausalLM(cfg)
            m.InitWeights(3L)
            let ids = torch.tensor([| 3L; 5L; 7L; 2L |]).reshape(1L, 4L)
            let mask = torch.ones_like(ids)
            let a = m.Forward(ids, mask, CausalLM.PositionsFromMask mask)
            m.GradientCheckpointing <- true
            let b = m.Forward(ids, mask, CausalLM.PositionsFromMask mask)
            Expect.isTrue (a.Equals(b)) "identical logits"
    ]
