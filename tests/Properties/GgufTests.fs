/// The GGUF export of `bench --only decode` (issue 19 §3): the q/k row permutation turns HF's
/// rotate-half rotary into llama.cpp's adjacent-pair rotary (same attention scores), and the file reads
/// back, with a reader written here from the format (ggml's gguf.h), as the model's tensors.
module SimKO.Tests.GgufTests

open System
open System.IO
open System.Text
open Expecto
open TorchSharp
open SimKO.Host.Model
open SimKO.Host.Bench

let private cfg bias = ModelConfig("llama", 300, 32, 64, 1, 4, 2, 1e-5, 10000.0, false, bias, 64)

/// llama.cpp's rotary of one head (LLAMA_ROPE_TYPE_NORM): dimensions 2j and 2j + 1 turn by p · θ_j.
let private adjacentRope (v: float32[]) (p: float) (inv: float[]) =
    let r = Array.copy v
    for j in 0 .. v.Length / 2 - 1 do
        let a, b = float v.[2 * j], float v.[2 * j + 1]
        let t = p * inv.[j]
        r.[2 * j] <- float32 (a * cos t - b * sin t)
        r.[2 * j + 1] <- float32 (a * sin t + b * cos t)
    r

let private dot (a: float32[]) (b: float32[]) = Array.fold2 (fun s x y -> s + float x * float y) 0.0 a b

let tests =
    testSequenced <| testList "gguf export" [
        testCase "llama.cpp's adjacent-pair rotary on the permuted q/k rows gives the attention scores of HF's rotate-half rotary (GQA)" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            let c = cfg false
            let hd, nh, nkv = c.HeadDim, c.NumAttentionHeads, c.NumKeyValueHeads
            let gen = new torch.Generator(11UL)
            let wq = torch.randn([| int64 (nh * hd); int64 c.HiddenSize |], generator = gen)
            let wk = torch.randn([| int64 (nkv * hd); int64 c.HiddenSize |], generator = gen)
            let x = torch.randn([| int64 c.HiddenSize |], generator = gen)
            let pq, pk = 37L, 5L
            let inv = Rotary.InverseFrequencies c
            let invHost = inv.data<float32>().ToArray() |> Array.map float
            // HF: rotate-half rotary (dimension i pairs with i + hd/2, both turned by p · θ_(i mod hd/2))
            let hfRope (w: torch.Tensor) heads (p: int64) =
                let v = w.matmul(x).data<float32>().ToArray()
                let half = hd / 2
                [| for h in 0 .. heads - 1 ->
                    let u = v.[h * hd .. h * hd + hd - 1]
                    Array.init hd (fun i ->
                        let t = float p * invHost.[i % half]
                        let rot = if i < half then -(float u.[i + half]) else float u.[i - half]
                        float32 (float u.[i] * cos t + rot * sin t)) |]
            let qh, kh = hfRope wq nh pq, hfRope wk nkv pk
            let hfScores = [| for h in 0 .. nh - 1 -> dot qh.[h] kh.[h / (nh / nkv)] |]
            // llama.cpp: adjacent-pair rotary on the exported rows
            let cppScores (wq': torch.Tensor) (wk': torch.Tensor) =
                let q = wq'.matmul(x).data<float32>().ToArray()
                let k = wk'.matmul(x).data<float32>().ToArray()
                [| for h in 0 .. nh - 1 ->
                    let g = h / (nh / nkv)
                    dot (adjacentRope q.[h * hd .. h * hd + hd - 1] (float pq) invHost) (adjacentRope k.[g * hd .. g * hd + hd - 1] (float pk) invHost) |]
            let exported = cppScores (GgufExport.RopePermute(wq, nh)) (GgufExport.RopePermute(wk, nkv))
            for h in 0 .. nh - 1 do
                Expect.floatClose { absolute = 1e-3; relative = 1e-4 } exported.[h] hfScores.[h] (sprintf "head %d" h)
            // negative control: the rows as HF stores them give other scores
            let unpermuted = cppScores wq wk
            Expect.isGreaterThan (Array.map2 (fun a b -> abs (a - b)) unpermuted hfScores |> Array.max) 0.1 "without the permutation the scores differ"

        testCase "the GGUF file reads back (header, hyper-parameters, 32-byte-aligned f32 tensors) as the model's tensors, q/k rows permuted" <| fun () ->
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            let c = cfg true
            use m = new CausalLM(c)
            m.InitWeights(5L)
            // non-zero biases, so a bias written unpermuted or misplaced shows
            for name, p in m.NamedParameters() do
                if name.EndsWith ".bias" then p.copy_(torch.randn(p.shape, generator = new torch.Generator(3UL))) |> ignore
            let path = Path.Combine(Path.GetTempPath(), sprintf "simko-gguf-test-%d.gguf" Environment.ProcessId)
            try
                GgufExport.WriteLlama(m, path)
                use r = new BinaryReader(File.OpenRead path)
                let str () = let n = r.ReadUInt64() in Encoding.UTF8.GetString(r.ReadBytes(int n))
                Expect.equal (r.ReadUInt32()) 0x46554747u "magic GGUF"
                Expect.equal (r.ReadUInt32()) 3u "version"
                let nTensors, nKv = r.ReadUInt64(), r.ReadUInt64()
                let rec value t : obj =
                    match t with
                    | 4u -> box (r.ReadUInt32())
                    | 5u -> box (r.ReadInt32())
                    | 6u -> box (r.ReadSingle())
                    | 7u -> box (r.ReadByte() <> 0uy)
                    | 8u -> box (str ())
                    | 9u ->
                        let et = r.ReadUInt32()
                        let n = r.ReadUInt64()
                        box [| for _ in 1UL .. n -> value et |]
                    | t -> failwithf "unexpected GGUF value type %d" t
                let kv = dict [ for _ in 1UL .. nKv -> let k = str () in k, value (r.ReadUInt32()) ]
                Expect.equal (kv.["general.architecture"] :?> string) "llama" "architecture"
                Expect.equal (kv.["llama.block_count"] :?> uint32) 1u "layers"
                Expect.equal (kv.["llama.attention.head_count"] :?> uint32) 4u "heads"
                Expect.equal (kv.["llama.attention.head_count_kv"] :?> uint32) 2u "kv heads"
                Expect.equal (kv.["llama.feed_forward_length"] :?> uint32) 64u "ffn"
                Expect.equal (kv.["llama.rope.freq_base"] :?> float32) 10000.0f "rope theta"
                Expect.equal (kv.["llama.attention.layer_norm_rms_epsilon"] :?> float32) 1e-5f "rms eps"
                Expect.equal (kv.["tokenizer.ggml.tokens"] :?> obj[]).Length 300 "one token per id"
                let infos =
                    [ for _ in 1UL .. nTensors ->
                        let name = str ()
                        let dims = [| for _ in 1u .. r.ReadUInt32() -> int64 (r.ReadUInt64()) |]
                        Expect.equal (r.ReadUInt32()) 0u (name + ": type F32")
                        name, dims, r.ReadUInt64() ]
                let dataStart = (r.BaseStream.Position + 31L) / 32L * 32L
                let hf = dict [ for name, p in m.NamedParameters() -> name, (p :> torch.Tensor) ]
                let hd = c.HeadDim
                // GGUF row 2j + s of a head is HF row s · hd/2 + j of that head (written as a plain loop)
                let permuted (t: torch.Tensor) =
                    let rows = int t.shape.[0]
                    let idx = [| for r' in 0 .. rows - 1 -> let h, i = r' / hd, r' % hd in int64 (h * hd + (i % 2) * (hd / 2) + i / 2) |]
                    t.index_select(0L, torch.tensor idx)
                let expected =
                    dict [
                        "token_embd.weight", hf.["model.embed_tokens.weight"]
                        "blk.0.attn_norm.weight", hf.["model.layers.0.input_layernorm.weight"]
                        "blk.0.attn_q.weight", permuted hf.["model.layers.0.self_attn.q_proj.weight"]
                        "blk.0.attn_k.weight", permuted hf.["model.layers.0.self_attn.k_proj.weight"]
                        "blk.0.attn_v.weight", hf.["model.layers.0.self_attn.v_proj.weight"]
                        "blk.0.attn_q.bias", permuted hf.["model.layers.0.self_attn.q_proj.bias"]
                        "blk.0.attn_k.bias", permuted hf.["model.layers.0.self_attn.k_proj.bias"]
                        "blk.0.attn_v.bias", hf.["model.layers.0.self_attn.v_proj.bias"]
                        "blk.0.attn_output.weight", hf.["model.layers.0.self_attn.o_proj.weight"]
                        "blk.0.ffn_norm.weight", hf.["model.layers.0.post_attention_layernorm.weight"]
                        "blk.0.ffn_gate.weight", hf.["model.layers.0.mlp.gate_proj.weight"]
                        "blk.0.ffn_up.weight", hf.["model.layers.0.mlp.up_proj.weight"]
                        "blk.0.ffn_down.weight", hf.["model.layers.0.mlp.down_proj.weight"]
                        "output_norm.weight", hf.["model.norm.weight"]
                        "output.weight", hf.["lm_head.weight"] ]
                Expect.equal (infos |> List.map (fun (n, _, _) -> n) |> set) (set expected.Keys) "tensor names"
                for name, dims, offset in infos do
                    let t = expected.[name]
                    Expect.equal (Array.rev dims) t.shape (name + ": dims innermost first")
                    Expect.equal (offset % 32UL) 0UL (name + ": aligned offset")
                    r.BaseStream.Position <- dataStart + int64 offset
                    let n = int (Array.fold (*) 1L dims)
                    let data = Array.init n (fun _ -> r.ReadSingle())
                    Expect.sequenceEqual data (t.contiguous().data<float32>().ToArray()) (name + ": data")
            finally File.Delete path
    ]
