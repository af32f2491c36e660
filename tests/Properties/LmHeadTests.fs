/// SPEC §7.12: the fused, chunked LM head + token statistics equal the plain path (full logits
/// `hidden · Wᵀ`, then `TokenStats.compute`, differentiated by autograd) in value and in gradient
/// w.r.t. the hidden states and the head weight, for any chunk size; and the SimKO loss taken from
/// those statistics (`Objective.lossOfStats`) equals `Objective.loss` on the full logits.
module SimKO.Tests.LmHeadTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open SimKO.Math
open SimKO.Math.Tensors
open SimKO.Tests.Checks

/// A head problem: B·T tokens of width D through a V-entry head, K candidates, chunks of Chunk
/// tokens (1 .. B·T + 2, so one chunk, uneven last chunks and a chunk larger than N all occur).
type HeadCase =
    { B: int; T: int; D: int; V: int; K: int; Chunk: int; Scale: float; Seed: int }

let headCaseGen =
    gen {
        let! b = Gen.choose (1, 3)
        let! t = Gen.choose (1, 6)
        let! d = Gen.choose (1, 8)
        let! v = Gen.choose (3, 24)
        let! k = Gen.choose (1, min v 5)
        let! chunk = Gen.choose (1, b * t + 2)
        let! scale = Gen.elements [ 0.1; 1.0; 4.0 ]
        let! seed = Gen.choose (0, Int32.MaxValue)
        return { B = b; T = t; D = d; V = v; K = k; Chunk = chunk; Scale = scale; Seed = seed }
    }

type HeadArbs =
    static member Head() : Arbitrary<HeadCase> = Arb.fromGen headCaseGen

let private headConfig n =
    let c = Generators.config n
    { c with arbitrary = typeof<HeadArbs> :: c.arbitrary }

type private Inputs = { Hidden: Tensor; Weight: Tensor; Tokens: Tensor; GLogp: Tensor; GTop: Tensor }

/// Hidden states, weight, sampled tokens and random upstream weights for a scalar of the outputs.
let private inputs (dtype: torch.ScalarType) (c: HeadCase) =
    let gen = new torch.Generator(uint64 c.Seed)
    let dt = Nullable dtype
    let hidden = torch.randn([| int64 c.B; int64 c.T; int64 c.D |], dt, generator = gen) * c.Scale
    let weight = torch.randn([| int64 c.V; int64 c.D |], dt, generator = gen)
    let probs = hidden.matmul(weight.t()).softmax(-1L).reshape(-1L, int64 c.V).to_type(torch.ScalarType.Float64)
    let tokens = probs.multinomial(1L, false, gen).reshape(int64 c.B, int64 c.T)
    { Hidden = hidden; Weight = weight; Tokens = tokens
      GLogp = torch.randn([| int64 c.B; int64 c.T |], dt, generator = gen)
      GTop = torch.randn([| int64 c.B; int64 c.T; int64 c.K |], dt, generator = gen) }

/// Statistics of a path, and the gradients of Σ g·logp + Σ g_k·topLogp w.r.t. hidden and weight.
let private run (chunk: int) (c: HeadCase) (x: Inputs) =
    let h = x.Hidden.detach().clone().requires_grad_(true)
    let w = x.Weight.detach().clone().requires_grad_(true)
    let s = LmHead.tokenStats chunk c.K h w x.Tokens
    ((s.LogProbs * x.GLogp).sum() + (s.TopKLogProbs * x.GTop).sum()).backward()
    s, h.grad.detach().clone(), w.grad.detach().clone()

let private sameStats atol rtol (a: TokenStats.TokenStats, ah: Tensor, aw: Tensor) (z: TokenStats.TokenStats, zh: Tensor, zw: Tensor) =
    tensorsClose "log-probs" atol rtol a.LogProbs z.LogProbs
    tensorsClose "entropy" atol rtol a.Entropy z.Entropy
    tensorsClose "top-K log-probs" atol rtol a.TopKLogProbs z.TopKLogProbs
    Expect.isTrue (a.TopKIndices.Equals(z.TopKIndices)) "top-K indices"
    tensorsClose "d/d hidden" atol rtol ah zh
    tensorsClose "d/d head weight" atol rtol aw zw

let tests =
    testList "fused chunked LM head" [
        testPropertyWithConfig (headConfig 80) "chunked statistics and their gradients equal the full-logits path for any chunk size (7.12)" (fun (c: HeadCase) ->
            use _ = torch.NewDisposeScope()
            let x = inputs torch.ScalarType.Float64 c
            sameStats 1e-12 1e-10 (run 0 c x) (run c.Chunk c x))

        testPropertyWithConfig (headConfig 20) "in float32 the chunked path agrees with the full path to float32 rounding" (fun (c: HeadCase) ->
            use _ = torch.NewDisposeScope()
            let x = inputs torch.ScalarType.Float32 c
            sameStats 1e-5 1e-4 (run 0 c x) (run c.Chunk c x))

        testCase "gradient matches finite differences of the chunked forward" <| fun () ->
            use _ = torch.NewDisposeScope()
            let c = { B = 2; T = 3; D = 4; V = 7; K = 3; Chunk = 2; Scale = 1.0; Seed = 5 }
            let x = inputs torch.ScalarType.Float64 c
            let _, gh, gw = run c.Chunk c x
            let f (h: Tensor) (w: Tensor) =
                use _ = torch.no_grad()
                let s = LmHead.tokenStats c.Chunk c.K h w x.Tokens
                value ((s.LogProbs * x.GLogp).sum() + (s.TopKLogProbs * x.GTop).sum())
            let eps = 1e-6
            let fd (t: Tensor) (other: Tensor -> float) =
                let flat = t.reshape(-1L)
                [| for i in 0L .. flat.shape[0] - 1L ->
                     let p = t.clone() in p.reshape(-1L).[i].add_(sc eps) |> ignore
                     let m = t.clone() in m.reshape(-1L).[i].sub_(sc eps) |> ignore
                     (other p - other m) / (2.0 * eps) |]
            allClose "d/d hidden vs finite differences" 1e-6 1e-5 (fd x.Hidden (fun h -> f h x.Weight)) (toArray gh)
            allClose "d/d weight vs finite differences" 1e-6 1e-5 (fd x.Weight (fun w -> f x.Hidden w)) (toArray gw)

        testCase "negative control: a chunked gradient that drops the top-K term differs from the full path" <| fun () ->
            use _ = torch.NewDisposeScope()
            let c = { B = 2; T = 3; D = 4; V = 9; K = 3; Chunk = 2; Scale = 1.0; Seed = 11 }
            let x = inputs torch.ScalarType.Float64 c
            let _, fullH, _ = run 0 c x
            let _, onlyY, _ = run c.Chunk c { x with GTop = torch.zeros_like(x.GTop) }
            Expect.isFalse (fullH.allclose(onlyY, 1e-6, 1e-8)) "the top-K term changes the gradient, so the comparison can fail"

        testPropertyWithConfig (headConfig 40) "SimKO loss from chunked statistics equals the loss from full logits, value and gradient" (fun (c: HeadCase) ->
            use _ = torch.NewDisposeScope()
            let x = inputs torch.ScalarType.Float64 c
            let gen = new torch.Generator(uint64 c.Seed + 1UL)
            let f64 = Nullable torch.ScalarType.Float64
            let b, t = int64 c.B, int64 c.T
            let lengths = (torch.rand([| b |], f64, generator = gen) * float c.T).floor() + 1.0
            let mask = torch.arange(t, dtype = f64).unsqueeze(0L).lt(lengths.unsqueeze(1L)).to_type(torch.ScalarType.Float64)
            let adv = (torch.rand([| b |], f64, generator = gen) - 0.5) * 2.0
            let logp0 = x.Hidden.matmul(x.Weight.t()).log_softmax(-1L).gather(-1L, x.Tokens.unsqueeze(-1L)).squeeze(-1L)
            let old = logp0 + torch.randn([| b; t |], f64, generator = gen) * 0.1
            let o = Batches.simko 0.1 (min c.K 3) 1.1 0.5
            let k = min (Objective.topKNeeded o) c.V
            let batch logits : Objective.PolicyBatch =
                { Logits = logits; Tokens = x.Tokens; OldLogProbs = old; RefLogProbs = None; Mask = mask
                  Advantages = adv; Context = Objective.selfContext mask }
            let full () =
                let h = x.Hidden.detach().clone().requires_grad_(true)
                let w = x.Weight.detach().clone().requires_grad_(true)
                let out = Objective.loss o (batch (h.matmul(w.t())))
                out.Loss.backward()
                value out.Loss, h.grad.clone(), w.grad.clone()
            let fused () =
                let h = x.Hidden.detach().clone().requires_grad_(true)
                let w = x.Weight.detach().clone().requires_grad_(true)
                let stats = LmHead.tokenStats c.Chunk k h w (Objective.validTokens x.Tokens mask)
                let out = Objective.lossOfStats o stats (batch Objective.noLogits)
                out.Loss.backward()
                value out.Loss, h.grad.clone(), w.grad.clone()
            let l1, h1, w1 = full ()
            let l2, h2, w2 = fused ()
            allClose "loss" 1e-12 1e-10 [| l1 |] [| l2 |]
            tensorsClose "d loss / d hidden" 1e-12 1e-9 h1 h2
            tensorsClose "d loss / d head weight" 1e-12 1e-9 w1 w2)

        testCase "a negative chunk size is an error naming the setting" <| fun () ->
            use _ = torch.NewDisposeScope()
            Expect.throwsC (fun () -> LmHead.tokenStats -1 1 (torch.zeros(1L, 1L, 2L)) (torch.zeros(3L, 2L)) (torch.zeros([| 1L; 1L |], dtype = Nullable torch.ScalarType.Int64)) |> ignore)
                (fun e -> Expect.stringContains e.Message "logits_chunk_tokens" "names the setting")
    ]
