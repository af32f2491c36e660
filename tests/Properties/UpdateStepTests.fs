/// The trainer's update step (PolicyUpdate, SPEC §7.8, §7.11): the gradient before clipping and the
/// update after it do not depend on the micro-batch size, for every gate; packing puts response
/// logits where they belong; the NaN guard skips.
module SimKO.Tests.UpdateStepTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Host.Training
open SimKO.Host.Model
open SimKO.Tests.Checks

/// A toy policy: logits depend on the current token only (embedding → linear).
type ToyPolicy(vocab: int64, dim: int64, seed: int64) =
    let gen = new torch.Generator(uint64 seed)
    let emb = new TorchSharp.Modules.Parameter(torch.randn([| vocab; dim |], generator = gen) * 0.5)
    let head = new TorchSharp.Modules.Parameter(torch.randn([| dim; vocab |], generator = gen) * 0.5)
    /// NaN logits in training mode (sampling and old log-probs stay finite).
    member val Poison = false with get, set
    member val Training = false with get, set
    interface IPolicy with
        member this.Logits(ids, _mask) =
            let h = emb.index_select(0L, ids.reshape(-1L)).reshape(ids.shape[0], ids.shape[1], dim)
            let logits = h.matmul(head)
            if this.Poison && this.Training then logits * nan else logits
        member _.NamedParameters = [| struct ("emb", emb); struct ("head", head) |] :> System.Collections.Generic.IReadOnlyList<_>
        member _.Device = torch.CPU
        member this.SetTraining t = this.Training <- t

let private samples () =
    let rng = System.Random(4)
    [| for g in 0 .. 3 do
         let prompt = Array.init (2 + g % 3) (fun _ -> rng.Next(1, 9))
         for _ in 0 .. 3 ->
             Sample(g, prompt, Array.init (1 + rng.Next(5)) (fun _ -> rng.Next(1, 9)), float (rng.Next(2))) |]

let private simko = Methods.objective (Methods.Simko { Methods.simkoDefaults with Alpha = 0.1; Q = 0.5 })

/// One objective per gate: per response (SimKO), batch-level (SimKO's option), top-ρ (forking).
let private gated =
    [ "simko, per-response gate", simko
      "simko, batch gate", Methods.objective (Methods.Simko { Methods.simkoDefaults with Alpha = 0.1; Q = 0.5; BatchGate = true })
      "forking, top 20 % of the batch", Methods.objective (Methods.Forking { Common = Methods.commonDefaults; Q = 0.8 })
      // ratio 0.2: several selected tokens, spread over micro-batches (issue 19 §4)
      "kl-cov, selection over the mini-batch", Methods.objective (Methods.KlCov { Common = Methods.commonDefaults; KlCov = { Ratio = 0.2; Coef = 1.0 } }) ]

let private run (objective: Objective.Objective) micro (policy: ToyPolicy) =
    let p = policy :> IPolicy
    let opt = AdamW(p.NamedParameters |> Seq.map (fun struct (n, t) -> struct (n, t :> torch.Tensor)) |> Array.ofSeq, 0.9, 0.99, 1e-8, 0.0)
    let s = samples ()
    use batch = PackedBatch.Pack(s, 0, torch.CPU)
    let rewards = torch.tensor(s |> Array.map (fun x -> x.Reward))
    let adv = Advantages.compute objective.Advantage 4 rewards
    let m = PolicyUpdate.Run(objective, p, opt, 1e-2, batch, adv, 4, UpdateSettings(2, micro, 1, 1.0))
    m, p.NamedParameters |> Seq.map (fun struct (_, t) -> t.detach().clone()) |> Array.ofSeq

/// The gradient before clipping that the trainer accumulates for one mini-batch (all 16 rows) in
/// micro-batches of `micro` rows, off-policy (old log-probs moved by seeded noise).
let private trainerGradient (objective: Objective.Objective) (micro: int) =
    let policy = ToyPolicy(10L, 8L, 1L) :> IPolicy
    let s = samples ()
    use batch = PackedBatch.Pack(s, 0, torch.CPU)
    let adv = Advantages.compute objective.Advantage 4 (torch.tensor(s |> Array.map (fun x -> x.Reward)))
    let old = PolicyUpdate.LogProbs(policy, batch, 16) + torch.randn(batch.ResponseMask.shape, generator = new torch.Generator(5UL)) * 0.1
    let problems = ResizeArray<string>()
    let ok = PolicyUpdate.AccumulateGradient(objective, policy, batch, adv, old, null, 0L, 16L, micro, System.Action<_>(ignore), System.Action<_>(problems.Add))
    Expect.isTrue ok (sprintf "finite losses (%A)" problems)
    let grads = policy.NamedParameters |> Seq.map (fun struct (_, t) -> t.grad.detach().clone()) |> Array.ofSeq
    // the same mini-batch in one plain call of the loss, no micro-batches, no trainer
    for struct (_, t) in policy.NamedParameters do t.grad.zero_() |> ignore
    let logits = batch.ResponseLogits(policy.Logits(batch.Ids, batch.Attention))
    let direct =
        Objective.loss objective
            { Logits = logits; Tokens = batch.ResponseTokens; OldLogProbs = old; RefLogProbs = None; Mask = batch.ResponseMask
              Advantages = adv.to_type(torch.ScalarType.Float32); Context = Objective.selfContext batch.ResponseMask }
    direct.Loss.backward()
    grads, policy.NamedParameters |> Seq.map (fun struct (_, t) -> t.grad.detach().clone()) |> Array.ofSeq

let tests =
    testSequenced <| testList "update step" [
        testCase "packing left-pads prompts and aligns response logits" <| fun () ->
            use _ = torch.NewDisposeScope()
            use b = PackedBatch.Pack([| Sample(0, [| 5; 6 |], [| 7 |], 1.0); Sample(0, [| 4 |], [| 8; 9 |], 0.0) |], 0, torch.CPU)
            Expect.sequenceEqual (b.Ids.data<int64>().ToArray()) [| 5L; 6L; 7L; 0L; 0L; 4L; 8L; 9L |] "ids [2, 4]"
            Expect.sequenceEqual (b.Attention.data<int64>().ToArray()) [| 1L; 1L; 1L; 0L; 0L; 1L; 1L; 1L |] "attention"
            Expect.sequenceEqual (b.ResponseMask.data<float32>().ToArray()) [| 1.0f; 0.0f; 1.0f; 1.0f |] "response mask"
            // logits at position t predict token t+1: the response block starts at P − 1 = 1
            let positions = torch.arange(4L).reshape(1L, 4L, 1L).expand(2L, 4L, 1L)
            Expect.sequenceEqual ((b.ResponseLogits positions).reshape(-1L).data<int64>().ToArray()) [| 1L; 2L; 1L; 2L |] "positions"
        for name, objective in ("grpo, no gate", Methods.objective (Methods.Grpo { Common = Methods.commonDefaults })) :: gated do
            testCase (sprintf "%s: the gradient before clipping does not depend on the micro-batch size and equals the whole mini-batch's (7.11)" name) <| fun () ->
                use _ = torch.NewDisposeScope()
                let _, whole = trainerGradient objective 16
                Expect.isGreaterThan (whole |> Array.map (fun g -> g.abs().max().item<float32>()) |> Array.max) 1e-4f "a gradient to compare"
                for micro in [ 1; 3; 16 ] do
                    let g, _ = trainerGradient objective micro
                    for i in 0 .. g.Length - 1 do
                        tensorsClose (sprintf "gradient of parameter %d with micro-batches of %d rows vs the whole mini-batch in one call" i micro) 1e-6 1e-4 whole.[i] g.[i]
        for name, objective in gated do
            testCase (sprintf "%s: the update does not depend on the micro-batch size" name) <| fun () ->
                use _ = torch.NewDisposeScope()
                let m1, p1 = run objective 1 (ToyPolicy(10L, 8L, 1L))
                let m16, p16 = run objective 16 (ToyPolicy(10L, 8L, 1L))
                Expect.equal (m1.Updates, m16.Updates) (2, 2) "two mini-batch updates each"
                for a, b in Array.zip p1 p16 do
                    let diff = (a - b).abs().max().item<float32>()
                    Expect.isLessThan diff 1e-5f "parameters after the update"
                let before = ToyPolicy(10L, 8L, 1L) :> IPolicy
                let struct (_, head0) = before.NamedParameters.[1]
                let moved = (p1.[1] - head0).abs().max().item<float32>()
                Expect.isGreaterThan moved 1e-4f "the update moved the parameters"
        testCase "a NaN loss skips the update and is reported" <| fun () ->
            use _ = torch.NewDisposeScope()
            let policy = ToyPolicy(10L, 8L, 2L)
            policy.Poison <- true
            let m, after = run simko 4 policy
            Expect.equal m.Updates 0 "no update taken"
            Expect.equal m.SkippedUpdates 2 "both mini-batches skipped"
            Expect.isNonEmpty m.Problems "problems reported"
            let fresh = ToyPolicy(10L, 8L, 2L) :> IPolicy
            for (a: torch.Tensor), struct (_, b) in Array.zip after (Array.ofSeq fresh.NamedParameters) do
                Expect.isTrue (a.Equals(b)) "parameters unchanged"
    ]
