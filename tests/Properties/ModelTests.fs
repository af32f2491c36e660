/// The decoder and the sampler: KV-cache logits equal full-forward logits, left padding does not
/// change a sequence's logits, sampling is deterministic for a seed, GQA and untied heads work.
module SimKO.Tests.ModelTests

open Expecto
open TorchSharp
open SimKO.Host.Batches
open SimKO.Host.Model
open SimKO.Host.Rollout
open SimKO.Host.Training

let tiny (vocab: int) (kvHeads: int) (tied: bool) =
    let cfg = ModelConfig("qwen2", vocab, 32, 64, 2, 4, kvHeads, 1e-6, 10000.0, tied, true, 64)
    let m = new CausalLM(cfg)
    m.InitWeights(7L)
    m

let private maxDiff (a: torch.Tensor) (b: torch.Tensor) = (a - b).abs().max().item<float32>()

let tests =
    testSequenced <| testList "model" [
        for kv, tied in [ 4, true; 2, false ] do
            testCase (sprintf "KV-cache logits equal full-forward logits at every step (kv heads %d, tied %b)" kv tied) <| fun () ->
                use _ = torch.NewDisposeScope()
                use _ = torch.no_grad()
                let m = tiny 20 kv tied
                let ids = torch.tensor([| 3L; 5L; 7L; 2L; 9L; 4L; 11L; 6L |]).reshape(1L, 8L)
                let mask = torch.ones_like(ids)
                let full = m.Forward(ids, mask, CausalLM.PositionsFromMask mask)                 // [1, 8, V]
                use cache = new KvCache(2)
                let prefill = m.Forward(ids.narrow(1L, 0L, 3L), mask.narrow(1L, 0L, 3L), CausalLM.PositionsFromMask(mask.narrow(1L, 0L, 3L)), cache)
                Expect.isLessThan (maxDiff prefill (full.narrow(1L, 0L, 3L))) 1e-5f "prefill"
                for t in 3L .. 7L do
                    let step = m.Forward(ids.narrow(1L, t, 1L), mask.narrow(1L, 0L, t + 1L), torch.tensor([| t |]).reshape(1L, 1L), cache)
                    Expect.isLessThan (maxDiff step (full.narrow(1L, t, 1L))) 1e-5f (sprintf "step %d" t)
        testCase "a prefill's last-position logits (the LM head on B rows) equal the last position of every position's logits" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            let m = tiny 20 2 false
            let ids = torch.tensor([| 0L; 3L; 5L; 7L; 2L; 9L; 4L; 11L |]).reshape(2L, 4L)
            let mask = torch.tensor([| 0L; 1L; 1L; 1L; 1L; 1L; 1L; 1L |]).reshape(2L, 4L)
            use c1 = new KvCache(2)
            let all = m.Forward(ids, mask, CausalLM.PositionsFromMask mask, c1)                    // [2, 4, V]
            use c2 = new KvCache(2)
            let last = m.Forward(ids, mask, CausalLM.PositionsFromMask mask, c2, lastPositionOnly = true)   // [2, 1, V]
            Expect.sequenceEqual last.shape [| 2L; 1L; 20L |] "one position"
            Expect.isLessThan (maxDiff last (all.narrow(1L, 3L, 1L))) 1e-5f "the last position's logits"
        testCase "a Llama-style model (no biases, untied head, llama3 rope scaling) matches its KV cache" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            let cfg = ModelConfig("llama", 20, 32, 64, 2, 4, 2, 1e-5, 500000.0, false, false, 64, RopeScaling(8.0, 1.0, 4.0, 16))
            let m = new CausalLM(cfg)
            m.InitWeights(3L)
            let names = m.NamedParameters() |> Seq.map (fun struct (n, _) -> n) |> Set.ofSeq
            Expect.isFalse (names.Contains "model.layers.0.self_attn.q_proj.bias") "no biases"
            Expect.isTrue (names.Contains "lm_head.weight") "untied head"
            let ids = torch.tensor([| 3L; 5L; 7L; 2L |]).reshape(1L, 4L)
            let mask = torch.ones_like(ids)
            let full = m.Forward(ids, mask, CausalLM.PositionsFromMask mask)
            use cache = new KvCache(2)
            m.Forward(ids.narrow(1L, 0L, 3L), mask.narrow(1L, 0L, 3L), CausalLM.PositionsFromMask(mask.narrow(1L, 0L, 3L)), cache) |> ignore
            let last = m.Forward(ids.narrow(1L, 3L, 1L), mask, torch.tensor([| 3L |]).reshape(1L, 1L), cache)
            Expect.isLessThan (maxDiff last (full.narrow(1L, 3L, 1L))) 1e-5f "cached step"
        testCase "stop strings end a response (and are kept)" <| fun () ->
            use _ = torch.NewDisposeScope()
            let m = tiny 20 2 true
            // every token decodes to "x": the stop string "xx" ends each response after two tokens
            let sampler = KvCacheSampler(m, 0, decode = System.Func<_, _>(fun (ids: System.Collections.Generic.IReadOnlyList<int>) -> System.String('x', ids.Count)))
            let out = sampler.Generate(GenerateRequest([| [| 3; 4 |] |], 4, 1.0, 1.0, 0, 8, 1L, StopStrings = [| "xx" |]))
            Expect.equal out.Count 4 "four responses (one prompt, four samples)"
            for g in out do Expect.equal g.Tokens.Length 2 "stopped after two tokens"
        testCase "left padding does not change a sequence's logits" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            let m = tiny 20 2 true
            let ids = torch.tensor([| 3L; 5L; 7L |]).reshape(1L, 3L)
            let alone = m.Forward(ids, torch.ones_like(ids), CausalLM.PositionsFromMask(torch.ones_like(ids)))
            let padded = torch.tensor([| 0L; 0L; 3L; 5L; 7L |]).reshape(1L, 5L)
            let pmask = torch.tensor([| 0L; 0L; 1L; 1L; 1L |]).reshape(1L, 5L)
            let logits = m.Forward(padded, pmask, CausalLM.PositionsFromMask pmask)
            Expect.isLessThan (maxDiff alone (logits.narrow(1L, 2L, 3L))) 1e-5f "padded vs alone"
        testCase "parameter names are HF checkpoint names" <| fun () ->
            use m = tiny 20 2 false
            let names = m.NamedParameters() |> Seq.map (fun struct (n, _) -> n) |> Set.ofSeq
            for n in [ "model.embed_tokens.weight"; "model.layers.0.self_attn.q_proj.weight"; "model.layers.0.self_attn.q_proj.bias"
                       "model.layers.1.mlp.down_proj.weight"; "model.layers.0.input_layernorm.weight"
                       "model.layers.0.post_attention_layernorm.weight"; "model.norm.weight"; "lm_head.weight" ] do
                Expect.isTrue (names.Contains n) (sprintf "has %s (got %A)" n names)
        testCase "sampling is deterministic for a seed, and cache and no-cache agree" <| fun () ->
            use _ = torch.NewDisposeScope()
            let m = tiny 20 2 true
            let req = GenerateRequest([| [| 3; 4 |]; [| 5; 6; 7 |] |], 3, 1.0, 0.9, 10, 6, 42L, StopTokenIds = [| 1 |])
            let a = KvCacheSampler(m, 0).Generate req
            let b = KvCacheSampler(m, 0).Generate req
            let c = KvCacheSampler(m, 0, useCache = false).Generate req
            Expect.equal a.Count 6 "2 prompts × 3"
            for x, y in Seq.zip a b do Expect.sequenceEqual x.Tokens y.Tokens "same seed, same tokens"
            for x, y in Seq.zip a c do Expect.sequenceEqual x.Tokens y.Tokens "cache and no cache"
            for x in a do
                Expect.isTrue (x.Tokens.Length = 6 || x.Tokens.[x.Tokens.Length - 1] = 1) "stops at EOS or max length"
                Expect.isTrue (x.SamplerLogProbs |> Array.forall (fun l -> l <= 0.0f && System.Single.IsFinite l)) "log-probs"
            let other = KvCacheSampler(m, 0).Generate(GenerateRequest(req.Prompts, 3, 1.0, 0.9, 10, 6, 43L, StopTokenIds = [| 1 |]))
            Expect.isFalse (Seq.forall2 (fun (x: Generated) (y: Generated) -> x.Tokens = y.Tokens) a other) "another seed differs"
        testCase "grouped-query attention equals multi-head attention with each K/V head repeated for its group" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            let gqa = tiny 20 2 true                       // 4 query heads share 2 K/V heads: heads 0,1 → kv 0; heads 2,3 → kv 1
            let mha = tiny 20 4 true
            let source = gqa.NamedParameters() |> Seq.map (fun struct (n, p) -> n, p) |> dict
            let headDim = 32L / 4L
            for struct (name, p) in mha.NamedParameters() do
                let q = source.[name]
                let value =
                    if name.Contains "k_proj" || name.Contains "v_proj" then
                        // [2·hd, …] → [2, hd, …] → repeat each kv head for its 2 query heads → [4·hd, …]
                        let shape = q.shape
                        let grouped = q.reshape(Array.append [| 2L; headDim |] shape.[1..])
                        grouped.repeat_interleave(2L, 0L).reshape(Array.append [| 4L * headDim |] shape.[1..])
                    else q
                p.copy_(value) |> ignore
            let ids = torch.tensor([| 3L; 5L; 7L; 2L; 9L |]).reshape(1L, 5L)
            let mask = torch.ones_like(ids)
            let a = gqa.Forward(ids, mask, CausalLM.PositionsFromMask mask)
            let b = mha.Forward(ids, mask, CausalLM.PositionsFromMask mask)
            Expect.isLessThan (maxDiff a b) 1e-5f "GQA = MHA with repeated K/V"
            // and the grouping matters: pairing kv heads with the wrong query heads changes the logits
            for struct (name, p) in mha.NamedParameters() do
                if name.Contains "k_proj" then
                    let q = source.[name]
                    let shape = q.shape
                    p.copy_(q.reshape(Array.append [| 2L; headDim |] shape.[1..]).repeat(Array.append [| 2L |] (Array.create (shape.Length) 1L))
                             .reshape(Array.append [| 4L * headDim |] shape.[1..])) |> ignore
            let c = mha.Forward(ids, mask, CausalLM.PositionsFromMask mask)
            Expect.isGreaterThan (maxDiff a c) 1e-3f "interleaved vs tiled grouping differ"
        testCase "a decode step's products (one row: split mat-vec; 2-256 rows: swapped) equal functional.linear" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            torch.manual_seed 5L |> ignore
            for rows, outF, bias in [ 1L, 64L, false; 1L, 64L, true; 1L, 33L, true; 3L, 48L, true; 16L, 64L, false; 256L, 40L, true; 257L, 40L, false ] do
                let w = torch.randn(outF, 24L)
                let b = if bias then torch.randn(outF) else null
                // the input as it comes: contiguous; a view that starts past its storage's first element (the last position
                // of a prefill); a view with a last-dimension stride of 2 (the products read x through its strides)
                let inputs =
                    [ "contiguous", torch.randn(1L, rows, 24L)                                      // [B, T, in]
                      "a view at an offset", torch.randn(1L, rows + 3L, 24L).narrow(1L, 3L, rows)
                      "a strided view", torch.randn(1L, rows, 48L).slice(-1L, 0L, 48L, 2L) ]
                for what, x in inputs do
                    let path = DecodeLinear.Choose(x, true)
                    let expected = if rows = 1L then DecodeLinear.Path.SplitMatVec elif rows <= DecodeLinear.MaxRows then DecodeLinear.Path.Swapped else DecodeLinear.Path.Linear
                    Expect.equal path expected (sprintf "%d rows" rows)
                    let y = DecodeLinear.Forward(x, w, b, path)
                    let reference = torch.nn.functional.linear(x, w, b)
                    Expect.sequenceEqual y.shape reference.shape (sprintf "%d rows (%s): shape" rows what)
                    Expect.isTrue (y.is_contiguous()) (sprintf "%d rows (%s): contiguous (heads are views of it)" rows what)
                    Expect.isLessThan (maxDiff y reference) 1e-5f (sprintf "%d rows (%s), %d outputs, bias %b" rows what outF bias)
            let x = torch.randn(1L, 1L, 24L)
            Expect.equal (DecodeLinear.Choose(x, false)) DecodeLinear.Path.Linear "no KV cache (scoring, training): functional.linear"
        testCase "with gradient the decode product is functional.linear, so training's gradients flow" <| fun () ->
            use _ = torch.NewDisposeScope()
            let w = torch.randn(8L, 4L).requires_grad_(true)
            let x = torch.randn(1L, 1L, 4L).requires_grad_(true)
            Expect.equal (DecodeLinear.Choose(x, true)) DecodeLinear.Path.Linear "gradient enabled"
            let y = DecodeLinear.Forward(torch.randn(1L, 1L, 4L), w, null, DecodeLinear.Path.SplitMatVec)   // a path chosen elsewhere
            y.sum().backward()
            Expect.isNotNull w.grad "the weight got its gradient"
            Expect.isGreaterThan (w.grad.abs().sum().item<float32>()) 0.0f "non-zero"
        testCase "q/k/v and gate/up are views of one joint tensor: in-place updates reach the sampling forward, replaced parameters are not used" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            let m = tiny 20 2 false                                                              // Qwen2 layout: q/k/v biases
            let flags = System.Reflection.BindingFlags.NonPublic ||| System.Reflection.BindingFlags.Instance
            let joint (l: DecoderLayer) =
                typeof<Attention>.GetField("_qkv", flags).GetValue(l.self_attn) :?> JointRows,
                typeof<Mlp>.GetField("_gateUp", flags).GetValue(l.mlp) :?> JointRows
            for l in m.model.layers do
                let qkv, gateUp = joint l
                Expect.isTrue (qkv.Intact && qkv.Shares() && gateUp.Intact && gateUp.Shares()) "every projection lies in its joint tensor"
            let ids = torch.tensor([| 3L; 5L; 7L; 2L; 9L |]).reshape(1L, 5L)
            let mask = torch.ones_like(ids)
            let stepVsFull () =
                let full = m.Forward(ids, mask, CausalLM.PositionsFromMask mask)                   // scoring: functional.linear per projection
                use cache = new KvCache(2)
                m.Forward(ids.narrow(1L, 0L, 4L), mask.narrow(1L, 0L, 4L), CausalLM.PositionsFromMask(mask.narrow(1L, 0L, 4L)), cache) |> ignore
                let step = m.Forward(ids.narrow(1L, 4L, 1L), mask, torch.tensor([| 4L |]).reshape(1L, 1L), cache)   // one row: the joint product
                maxDiff (step.``to``(torch.ScalarType.Float32)) (full.narrow(1L, 4L, 1L).``to``(torch.ScalarType.Float32))
            Expect.isLessThan (stepVsFull ()) 1e-5f "before the update"
            // an optimizer-like in-place update of k_proj and up_proj (weights and bias)
            let l0 = m.model.layers.[0]
            l0.self_attn.k_proj.weight.add_(torch.randn_like(l0.self_attn.k_proj.weight)) |> ignore
            l0.self_attn.k_proj.bias.add_(torch.ones_like(l0.self_attn.k_proj.bias)) |> ignore
            l0.mlp.up_proj.weight.mul_(torch.randn_like(l0.mlp.up_proj.weight)) |> ignore
            Expect.isLessThan (stepVsFull ()) 1e-5f "the sampling forward sees the updated weights"
            // new parameters (a dtype move outside MoveTo): no longer joined, so the layers run one by one
            m.``to``(torch.ScalarType.Float64) |> ignore
            let qkv, _ = joint m.model.layers.[0]
            Expect.isFalse qkv.Intact "replaced parameters are not the joined ones"
            Expect.isLessThan (stepVsFull ()) 1e-5f "and the sampling forward still equals scoring"
            m.MoveTo(torch.CPU, torch.ScalarType.Float32) |> ignore
            let qkv, gateUp = joint m.model.layers.[0]
            Expect.isTrue (qkv.Intact && qkv.Shares() && gateUp.Intact) "MoveTo joins again"
            Expect.isLessThan (stepVsFull ()) 1e-5f "after MoveTo"
        testCase "the sampler's log-probs (T = 1, no top-k/top-p) equal the trainer's recomputed log-probs" <| fun () ->
            use _ = torch.NewDisposeScope()
            let m = tiny 20 2 true
            let prompts = [| [| 3; 4 |]; [| 5; 6; 7 |] |]
            let out = KvCacheSampler(m, 0).Generate(GenerateRequest(prompts, 4, 1.0, 1.0, 0, 6, 11L, StopTokenIds = [| 1 |]))
            use _ = torch.no_grad()
            let samples = out |> Seq.map (fun g -> Sample(0, prompts.[g.PromptIndex], g.Tokens, 0.0)) |> Array.ofSeq
            use batch = PackedBatch.Pack(samples, 0, torch.CPU)
            let policy = ModelPolicy(m)
            let logits = batch.ResponseLogits(policy.Logits(batch.Ids, batch.Attention))
            let recomputed = logits.log_softmax(-1L).gather(-1L, batch.ResponseTokens.unsqueeze(-1L)).squeeze(-1L)
            for i, g in Seq.indexed out do
                let row = recomputed.[int64 i].narrow(0L, 0L, int64 g.Tokens.Length).data<float32>().ToArray()
                for t in 0 .. g.Tokens.Length - 1 do
                    Expect.floatClose { absolute = 1e-4; relative = 1e-4 } (float g.SamplerLogProbs.[t]) (float row.[t]) (sprintf "sample %d token %d" i t)
    ]
