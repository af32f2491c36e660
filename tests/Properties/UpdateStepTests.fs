/// The trainer's update step (PolicyUpdate, SPEC §7.8, §7.11): the gradient before clipping and the
/// update after it do not depend on the micro-batch size, for every gate; packing puts response
/// logits where they belong; the NaN guard skips.
module SimKO.Tests.UpdateStepTests

open Expecto
open TorchSharp
open SimKO.Math
open SimKO.Host.Training
open SimKO.Host.Batches
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

/// `groups` prompt groups of 4 responses each, rewards 0/1.
let private samplesOf (groups: int) =
    let rng = System.Random(4)
    [| for g in 0 .. groups - 1 do
         let prompt = Array.init (2 + g % 3) (fun _ -> rng.Next(1, 9))
         for _ in 0 .. 3 ->
             Sample(g, prompt, Array.init (1 + rng.Next(5)) (fun _ -> rng.Next(1, 9)), float (rng.Next(2))) |]

let private samples () = samplesOf 4

let private simko = Methods.objective (Methods.make Methods.simko { Methods.simkoDefaults with Alpha = 0.1; Q = 0.5 })

/// One objective per gate: per response (SimKO), batch-level (SimKO's option), top-ρ (forking).
let private gated =
    [ "simko, per-response gate", simko
      "simko, batch gate", Methods.objective (Methods.make Methods.simko { Methods.simkoDefaults with Alpha = 0.1; Q = 0.5; BatchGate = true })
      "forking, top 20 % of the batch", Methods.objective (Methods.define Methods.forking)
      // ratio 0.2: several selected tokens, spread over micro-batches (issue 19 §4)
      "kl-cov, selection over the mini-batch", Methods.objective (Methods.make Methods.klCov { Ratio = 0.2; Coef = 1.0 }) ]

/// One update step of `miniBatches` mini-batches over `groups` groups of 4, in micro-batches of `micro` rows.
let private runOn (groups: int) (miniBatches: int) (objective: Objective.Objective) micro (policy: ToyPolicy) =
    let p = policy :> IPolicy
    let opt = AdamW(p.NamedParameters |> Seq.map (fun struct (n, t) -> struct (n, t :> torch.Tensor)) |> Array.ofSeq, 0.9, 0.99, 1e-8, 0.0)
    let s = samplesOf groups
    use batch = PackedBatch.Pack(s, 0, torch.CPU)
    let rewards = torch.tensor(s |> Array.map (fun x -> x.Reward))
    let adv = Advantages.compute objective.Advantage 4 rewards
    let m = PolicyUpdate.Run(objective, p, opt, 1e-2, batch, adv, 4, UpdateSettings(miniBatches, micro, 1, 1.0))
    m, p.NamedParameters |> Seq.map (fun struct (_, t) -> t.detach().clone()) |> Array.ofSeq

let private run objective micro policy = runOn 4 2 objective micro policy

/// The gradient before clipping that the trainer accumulates for one mini-batch (all 16 rows) in
/// micro-batches of `micro` rows, off-policy (old log-probs moved by seeded noise).
/// With a KL penalty (β > 0) the reference log-probs are the old ones moved by other seeded noise.
let private trainerGradientOn (groups: int) (objective: Objective.Objective) (micro: int) =
    let policy = ToyPolicy(10L, 8L, 1L) :> IPolicy
    let s = samplesOf groups
    let rows = int64 s.Length
    use batch = PackedBatch.Pack(s, 0, torch.CPU)
    let adv = Advantages.compute objective.Advantage 4 (torch.tensor(s |> Array.map (fun x -> x.Reward)))
    let old = PolicyUpdate.LogProbs(policy, batch, 16) + torch.randn(batch.ResponseMask.shape, generator = new torch.Generator(5UL)) * 0.1
    let reference =
        if objective.Kl.Beta > 0.0 then Some(old + torch.randn(batch.ResponseMask.shape, generator = new torch.Generator(6UL)) * 0.2) else None
    let problems = ResizeArray<string>()
    let ok = PolicyUpdate.AccumulateGradient(objective, policy, batch, adv, old, Option.toObj reference, 0L, rows, micro, System.Action<_>(ignore), System.Action<_>(problems.Add))
    Expect.isTrue ok (sprintf "finite losses (%A)" problems)
    let grads = policy.NamedParameters |> Seq.map (fun struct (_, t) -> t.grad.detach().clone()) |> Array.ofSeq
    // the same mini-batch in one plain call of the loss, no micro-batches, no trainer
    for struct (_, t) in policy.NamedParameters do t.grad.zero_() |> ignore
    let logits = batch.ResponseLogits(policy.Logits(batch.Ids, batch.Attention))
    let direct =
        Objective.loss objective
            { Logits = logits; Tokens = batch.ResponseTokens; OldLogProbs = old; RefLogProbs = reference; Mask = batch.ResponseMask
              Advantages = adv.to_type(torch.ScalarType.Float32); Context = Objective.selfContext batch.ResponseMask }
    direct.Loss.backward()
    grads, policy.NamedParameters |> Seq.map (fun struct (_, t) -> t.grad.detach().clone()) |> Array.ofSeq

let private trainerGradient objective micro = trainerGradientOn 4 objective micro

/// A method with a KL penalty to the reference (β > 0).
let private withKl beta estimator (m: Methods.Method) =
    { m with Common = { m.Common with Kl = { Beta = beta; Estimator = estimator } } }

/// Every method of the one list with its paper defaults, and some with β > 0 (issue 19 §4.3).
let private everyMethod =
    [ for m in Methods.all do
          // pass@k with k = n (4 = the group size) gives every response of a group one advantage: zero gradient
          let m = if m.Name = Methods.passK.Name then Methods.make Methods.passK { K = 2 } else m
          yield sprintf "%s (%s)" m.Name (if m.Name = Methods.passK.Name then "k = 2" else "defaults"), Methods.objective m
      for m, est in [ Methods.define Methods.grpo, KlPenalty.K3; Methods.define Methods.simko, KlPenalty.K1
                      Methods.define Methods.klCov, KlPenalty.K2; Methods.define Methods.forking, KlPenalty.K3 ] do
          yield sprintf "%s, β = 0.05 (%s)" m.Name (KlPenalty.name est), Methods.objective (withKl 0.05 est m) ]

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
        // every gate, and every method of the one list (KL penalty β > 0 included)
        for name, objective in gated @ everyMethod do
            testCase (sprintf "%s: the gradient before clipping does not depend on the micro-batch size and equals the whole mini-batch's (7.11)" name) <| fun () ->
                use _ = torch.NewDisposeScope()
                let _, whole = trainerGradient objective 16
                Expect.isGreaterThan (whole |> Array.map (fun g -> g.abs().max().item<float32>()) |> Array.max) 1e-4f "a gradient to compare"
                for micro in [ 1; 3; 16 ] do
                    let g, _ = trainerGradient objective micro
                    for i in 0 .. g.Length - 1 do
                        tensorsClose (sprintf "gradient of parameter %d with micro-batches of %d rows vs the whole mini-batch in one call" i micro) 1e-6 1e-4 whole.[i] g.[i]
        testCase "β > 0 changes the gradient (the KL term reaches the invariance properties)" <| fun () ->
            use _ = torch.NewDisposeScope()
            let plain, _ = trainerGradient (Methods.objective (Methods.define Methods.grpo)) 16
            let kl, _ = trainerGradient (Methods.objective (withKl 0.05 KlPenalty.K3 (Methods.define Methods.grpo))) 16
            let diff = Array.map2 (fun (a: torch.Tensor) (b: torch.Tensor) -> (a - b).abs().max().item<float32>()) plain kl |> Array.max
            Expect.isGreaterThan diff 1e-5f "the KL penalty moves the gradient"
        for name, objective in [ "forking", Methods.objective (Methods.define Methods.forking)
                                 "kl-cov (ratio 0.02)", Methods.objective (Methods.make Methods.klCov { Ratio = 0.02; Coef = 1.0 }) ] do
            testCase (sprintf "%s: a 128-row mini-batch gives the same gradient and update in micro-batches of 16 and 128 rows" name) <| fun () ->
                use _ = torch.NewDisposeScope()
                let _, whole = trainerGradientOn 32 objective 128
                for micro in [ 16; 128 ] do
                    let g, _ = trainerGradientOn 32 objective micro
                    for i in 0 .. g.Length - 1 do
                        tensorsClose (sprintf "gradient of parameter %d, micro-batches of %d rows" i micro) 1e-6 1e-4 whole.[i] g.[i]
                let m16, p16 = runOn 32 1 objective 16 (ToyPolicy(10L, 8L, 1L))
                let m128, p128 = runOn 32 1 objective 128 (ToyPolicy(10L, 8L, 1L))
                Expect.equal (m16.Updates, m128.Updates) (1, 1) "one mini-batch update each"
                for a, b in Array.zip p16 p128 do
                    Expect.isLessThan ((a - b).abs().max().item<float32>()) 1e-5f "parameters after the update"
                let struct (_, head0) = (ToyPolicy(10L, 8L, 1L) :> IPolicy).NamedParameters.[1]
                Expect.isGreaterThan ((p16.[1] - head0).abs().max().item<float32>()) 1e-4f "the update moved the parameters"
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
