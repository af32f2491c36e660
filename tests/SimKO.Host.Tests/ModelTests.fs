/// The decoder: HF parameter names, the KV cache against the full forward, left padding,
/// grouped-query attention against plain multi-head attention, rotary embeddings.
module SimKO.Host.Tests.ModelTests

open System
open Expecto
open TorchSharp
open SimKO.Host.Model
open SimKO.Host.Tests.Helpers

type private T = torch.Tensor

/// Logits of a full forward over `rows` (all tokens valid unless a mask is given): [B, T, V].
let private fullLogits (m: CausalLM) (ids: T) (mask: T) =
    use _ng = torch.no_grad ()
    m.forward(ids, mask)

/// Logits of a cached run: prefill the first `prefix` columns, then one column per step;
/// returns per column the logits of that column's position [B, V] (columns prefix-1 .. T-1).
let private cachedLogits (m: CausalLM) (ids: T) (valid: T) (prefix: int) =
    use _ng = torch.no_grad ()
    let b = int ids.shape.[0]
    let t = int ids.shape.[1]
    use cache = new KvCache(m.Config, b, t, m.Device, m.DType)
    use counts = valid.to_type(torch.ScalarType.Int64).cumsum(1)
    use positions = (counts - 1L).clamp_min(0L)
    let first = m.ForwardCached(ids.narrow(1, 0L, int64 prefix), positions.narrow(1, 0L, int64 prefix), valid.narrow(1, 0L, int64 prefix), cache)
    [ yield first
      for c in prefix .. t - 1 do
          yield m.ForwardCached(ids.narrow(1, int64 c, 1L), positions.narrow(1, int64 c, 1L), valid.narrow(1, int64 c, 1L), cache) ]
    |> List.truncate (t - prefix + 1)

let private archCases = [ "qwen2 (GQA 4:2, biases, tied)", qwenTiny 48; "llama (GQA 4:1, untied, llama3 rope)", llamaTiny 48 ]

let tests =
    testList "model" [
        test "parameter names and shapes are the HF ones" {
            use q = CausalLM.CreateRandom(qwenTiny 48, 1L)
            let names = parameters q |> List.map fst |> set
            for n in [ "model.embed_tokens.weight"; "model.norm.weight"; "model.layers.0.input_layernorm.weight"
                       "model.layers.1.post_attention_layernorm.weight"; "model.layers.1.self_attn.q_proj.bias"
                       "model.layers.0.self_attn.k_proj.weight"; "model.layers.0.self_attn.o_proj.weight"
                       "model.layers.0.mlp.gate_proj.weight"; "model.layers.0.mlp.up_proj.weight"; "model.layers.0.mlp.down_proj.weight" ] do
                Expect.contains names n n
            Expect.isFalse (names.Contains "lm_head.weight") "tied: no lm_head"
            Expect.isFalse (names.Contains "model.layers.0.self_attn.o_proj.bias") "qwen2 o_proj has no bias"
            let shapes = parameters q |> dict
            Expect.sequenceEqual shapes.["model.layers.0.self_attn.k_proj.weight"].shape [| 16L; 32L |] "k_proj [n_kv*hd, hidden]"
            Expect.sequenceEqual shapes.["model.layers.0.self_attn.q_proj.bias"].shape [| 32L |] "q bias"
            use l = CausalLM.CreateRandom(llamaTiny 48, 1L)
            let lnames = parameters l |> List.map fst |> set
            Expect.contains lnames "lm_head.weight" "untied head"
            Expect.isFalse (lnames |> Set.exists (fun n -> n.EndsWith ".bias")) "llama: no biases"
            Expect.equal (Set.count lnames) (Set.count names + 1 - 2 * 3) "llama = qwen + lm_head - 3 biases x 2 layers"
        }
        test "random init is reproducible from the seed and follows HF's init" {
            use a = CausalLM.CreateRandom(qwenTiny 48, 7L)
            use b = CausalLM.CreateRandom(qwenTiny 48, 7L)
            use c = CausalLM.CreateRandom(qwenTiny 48, 8L)
            let pa, pb, pc = parameters a |> dict, parameters b |> dict, parameters c |> dict
            for KeyValue(n, t) in pa do
                Expect.isTrue (t.Equals pb.[n]) (sprintf "%s same seed" n)
            Expect.isFalse (pa.["model.embed_tokens.weight"].Equals pc.["model.embed_tokens.weight"]) "other seed differs"
            Expect.isTrue (pa.["model.norm.weight"].Equals(torch.ones(32L))) "norms start at 1"
            Expect.isTrue (pa.["model.layers.0.self_attn.q_proj.bias"].Equals(torch.zeros(32L))) "biases start at 0"
            let std = pa.["model.layers.0.mlp.up_proj.weight"].std().ToDouble()
            Expect.isTrue (abs (std - 0.02) < 0.004) (sprintf "weights ~ N(0, 0.02^2), std %f" std)
        }
        testList "KV-cache logits equal full-forward logits at every step" [
            for name, cfg in archCases ->
                test name {
                    use m = CausalLM.CreateRandom(cfg, 3L)
                    // Three rows, left-padded by 0, 2 and 5 (pad id 0), 12 columns.
                    let rows = randomIds 11 3 12 1 48
                    rows.[1].[0] <- 0L; rows.[1].[1] <- 0L
                    for j in 0 .. 4 do rows.[2].[j] <- 0L
                    use ids = idsTensor rows
                    use valid = ids.ne(torch.tensor 0L)
                    use full = fullLogits m ids valid
                    let prefix = 6
                    let steps = cachedLogits m ids valid prefix
                    steps |> List.iteri (fun i got ->
                        let col = prefix - 1 + i
                        use want = full.select(1, int64 col)
                        let d = maxAbsDiff got want
                        Expect.isLessThanOrEqual d 1e-5 (sprintf "column %d: max |cached - full| = %g" col d))
                    for t in steps do t.Dispose()
                }
        ]
        testList "left padding does not change a sequence's logits" [
            for name, cfg in archCases ->
                test name {
                    use m = CausalLM.CreateRandom(cfg, 4L)
                    let seq = (randomIds 5 1 7 1 48).[0]
                    use alone = fullLogits m (idsTensor [| seq |]) (torch.ones([| 1L; 7L |]))
                    for pad in [ 1; 3; 6 ] do
                        let padded = Array.append (Array.zeroCreate pad) seq
                        let other = (randomIds (100 + pad) 1 (7 + pad) 1 48).[0]
                        use ids = idsTensor [| other; padded |]
                        use mask = ids.ne(torch.tensor 0L)
                        use logits = fullLogits m ids mask
                        use mine = logits.select(0, 1L).narrow(0, int64 pad, 7L)
                        let d = maxAbsDiff mine (alone.select(0, 0L))
                        Expect.isLessThanOrEqual d 1e-5 (sprintf "%d pads: max diff %g" pad d)
                        Expect.isTrue (logits.isfinite().all().ToBoolean()) "padding rows stay finite"
                }
        ]
        test "right padding after a sequence does not change its logits" {
            use m = CausalLM.CreateRandom(qwenTiny 48, 4L)
            let seq = (randomIds 6 1 6 1 48).[0]
            use alone = fullLogits m (idsTensor [| seq |]) (torch.ones([| 1L; 6L |]))
            let padded = Array.append seq (Array.zeroCreate 4)
            use ids = idsTensor [| padded |]
            use logits = fullLogits m ids (ids.ne(torch.tensor 0L))
            Expect.isLessThanOrEqual (maxAbsDiff (logits.narrow(1, 0L, 6L)) alone) 1e-6 "prefix unchanged"
        }
        test "a later token never changes earlier logits (causality)" {
            use m = CausalLM.CreateRandom(llamaTiny 48, 5L)
            let a = (randomIds 9 1 8 1 48).[0]
            let b = Array.copy a
            b.[5] <- (a.[5] % 47L) + 1L
            use la = fullLogits m (idsTensor [| a |]) (torch.ones([| 1L; 8L |]))
            use lb = fullLogits m (idsTensor [| b |]) (torch.ones([| 1L; 8L |]))
            Expect.isLessThanOrEqual (maxAbsDiff (la.narrow(1, 0L, 5L)) (lb.narrow(1, 0L, 5L))) 1e-6 "positions 0..4 unchanged"
            Expect.isGreaterThan (maxAbsDiff (la.narrow(1, 5L, 3L)) (lb.narrow(1, 5L, 3L))) 1e-4 "positions 5.. change"
        }
        test "grouped-query attention equals multi-head attention with each K/V head repeated" {
            // GQA with 4 query heads on 2 K/V heads = MHA with 4 K/V heads where heads 0,1 share
            // K/V head 0 and heads 2,3 share K/V head 1 (HF's repeat_kv order).
            let gqaCfg = qwenTiny 40
            let mhaCfg = ModelConfig.Tiny(Architecture.Qwen2, 40, hiddenSize = 32, layers = 2, heads = 4, kvHeads = 4, ropeTheta = 1000000.0)
            use gqa = CausalLM.CreateRandom(gqaCfg, 12L)
            use mha = CausalLM.CreateEmpty(mhaCfg, torch.CPU, torch.ScalarType.Float32)
            let src = parameters gqa |> dict
            use _ng = torch.no_grad ()
            for n, p in parameters mha do
                let s = src.[n]
                if n.Contains "k_proj" || n.Contains "v_proj" then
                    // weight [n_kv*hd, hidden] -> [n_kv, hd, ...] -> repeat each head twice -> [2*n_kv*hd, ...]
                    let hd = 8L
                    let rest = s.shape |> Array.skip 1
                    use grouped = s.reshape(Array.append [| 2L; 1L; hd |] rest)
                    use rep = grouped.expand(Array.append [| 2L; 2L; hd |] rest).reshape(p.shape)
                    p.copy_(rep) |> ignore
                else p.copy_(s) |> ignore
            let rows = randomIds 21 2 9 1 40
            rows.[0].[0] <- 0L
            use ids = idsTensor rows
            use mask = ids.ne(torch.tensor 0L)
            use a = gqa.forward(ids, mask)
            use b = mha.forward(ids, mask)
            Expect.isLessThanOrEqual (maxAbsDiff a b) 1e-5 "same logits"
        }
        test "rotary scores depend only on the relative position" {
            let inv = torch.tensor(Rotary.InverseFrequencies(8, 10000.0, null) |> Array.map float32)
            let q = torch.randn([| 1L; 1L; 1L; 8L |], generator = new torch.Generator(1UL, torch.CPU))
            let k = torch.randn([| 1L; 1L; 1L; 8L |], generator = new torch.Generator(2UL, torch.CPU))
            let score (m: int64) (n: int64) =
                let struct (cq, sq) = Rotary.Tables(inv, torch.tensor([| m |]).reshape(1L, 1L), torch.ScalarType.Float32)
                let struct (ck, sk) = Rotary.Tables(inv, torch.tensor([| n |]).reshape(1L, 1L), torch.ScalarType.Float32)
                (Rotary.Apply(q, cq, sq) * Rotary.Apply(k, ck, sk)).sum().ToDouble()
            Expect.floatClose Accuracy.medium (score 3L 1L) (score 10L 8L) "shift by 7"
            Expect.floatClose Accuracy.medium (score 0L 0L) ((q * k).sum().ToDouble()) "position 0 is the identity"
        }
        test "llama3 rope scaling keeps high frequencies, divides low ones by the factor, blends between" {
            // Llama-3.2's settings: theta 500000, head_dim 64, factor 32, low 1, high 4, original 8192.
            let scaling = RopeScaling(32.0, 1.0, 4.0, 8192)
            let plain = Rotary.InverseFrequencies(64, 500000.0, null)
            let scaled = Rotary.InverseFrequencies(64, 500000.0, scaling)
            let wavelen i = 2.0 * Math.PI / plain.[i]
            let mutable high, low, mid = 0, 0, 0
            for i in 0 .. 31 do
                if wavelen i < 8192.0 / 4.0 then
                    Expect.equal scaled.[i] plain.[i] (sprintf "high-frequency %d kept" i); high <- high + 1
                elif wavelen i > 8192.0 then
                    Expect.floatClose Accuracy.veryHigh scaled.[i] (plain.[i] / 32.0) (sprintf "low-frequency %d divided" i); low <- low + 1
                else
                    Expect.isTrue (scaled.[i] < plain.[i] && scaled.[i] > plain.[i] / 32.0) (sprintf "band %d blended" i); mid <- mid + 1
            Expect.isTrue (high > 0 && low > 0 && mid > 0) (sprintf "all three regimes present (%d/%d/%d)" high mid low)
        }
        test "a bfloat16 model returns float32 logits" {
            use m = CausalLM.CreateRandom(qwenTiny 48, 2L, torch.CPU, torch.ScalarType.BFloat16)
            Expect.equal m.DType torch.ScalarType.BFloat16 "model dtype"
            use ids = idsTensor (randomIds 1 2 4 1 48)
            use logits = fullLogits m ids (torch.ones([| 2L; 4L |]))
            Expect.equal logits.dtype torch.ScalarType.Float32 "logits dtype"
            use f32 = CausalLM.CreateRandom(qwenTiny 48, 2L)
            use ref32 = fullLogits f32 ids (torch.ones([| 2L; 4L |]))
            Expect.isLessThan (maxAbsDiff logits ref32) 0.05 "close to the float32 model"
        }
        test "every parameter receives a gradient from a cross-entropy loss" {
            for cfg in [ qwenTiny 48; llamaTiny 48 ] do
                use m = CausalLM.CreateRandom(cfg, 9L)
                use ids = idsTensor (randomIds 3 2 6 1 48)
                use logits = m.forward(ids, torch.ones([| 2L; 6L |]))
                use loss = torch.nn.functional.cross_entropy(logits.reshape(-1L, 48L), ids.reshape(-1L))
                loss.backward ()
                for n, p in parameters m do
                    Expect.isNotNull p.grad (sprintf "%s has a gradient" n)
                    Expect.isGreaterThan (p.grad.abs().sum().ToDouble()) 0.0 (sprintf "%s gradient is not zero" n)
        }
        test "configs are validated with every problem listed" {
            let e = throws<IO.InvalidDataException> (fun () ->
                        ModelConfig.Tiny(Architecture.Qwen2, 10, hiddenSize = 30, heads = 4, kvHeads = 3) |> ignore) "bad config"
            Expect.stringContains e.Message "multiple of num_key_value_heads" "GQA ratio"
        }
    ]
