using System.Text;
using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// Writes a <see cref="CausalLM"/> as a float32 GGUF (version 3) file that llama.cpp loads as its
/// <c>llama</c> architecture, so `bench --only decode` can run llama.cpp on the very weights it decodes
/// with (tools/LlamaCppBaseline). Layout (ggml's gguf.h): magic "GGUF", version 3, tensor count,
/// key-value count, the key-values, the tensor infos (name, dims innermost first, type F32, offset),
/// padding to <see cref="Alignment"/>, then each tensor's data at its aligned offset. Names and
/// hyper-parameters are llama.cpp's (convert_hf_to_gguf.py's LlamaModel): token_embd, blk.i.attn_q …
/// ffn_down, output_norm, output (absent when the head is tied; llama.cpp then uses token_embd). The
/// vocabulary is a dummy SentencePiece one of the model's size (&lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, the 256
/// byte tokens, then "▁t{id}"), as only ids are exchanged.
/// </summary>
public static class GgufExport
{
    public const int Alignment = 32;
    const uint Magic = 0x46554747;                                                             // "GGUF" little-endian
    const uint TypeU32 = 4, TypeI32 = 5, TypeF32 = 6, TypeBool = 7, TypeString = 8, TypeArray = 9;
    const uint TensorF32 = 0;

    /// <summary>Write <paramref name="model"/> to <paramref name="path"/> (atomically).</summary>
    public static void WriteLlama(CausalLM model, string path)
    {
        var c = model.Config;
        if (c.RopeScaling is not null) throw new NotSupportedException("GGUF export: rope scaling is not written; export a model without rope_scaling");
        var tensors = Tensors(model);
        AtomicFile.Write(path, stream =>
        {
            using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            var kv = new List<Action>();
            void Str(string s) { var b = Encoding.UTF8.GetBytes(s); w.Write((ulong)b.Length); w.Write(b); }
            void U32(string key, uint v) => kv.Add(() => { Str(key); w.Write(TypeU32); w.Write(v); });
            void F32(string key, float v) => kv.Add(() => { Str(key); w.Write(TypeF32); w.Write(v); });
            void Text(string key, string v) => kv.Add(() => { Str(key); w.Write(TypeString); Str(v); });
            void Bool(string key, bool v) => kv.Add(() => { Str(key); w.Write(TypeBool); w.Write((byte)(v ? 1 : 0)); });
            void Array<T>(string key, uint type, IReadOnlyList<T> items, Action<T> item) =>
                kv.Add(() => { Str(key); w.Write(TypeArray); w.Write(type); w.Write((ulong)items.Count); foreach (var x in items) item(x); });

            Text("general.architecture", "llama");
            Text("general.name", "simko-bench");
            U32("general.alignment", Alignment);
            U32("general.file_type", 0);                                                       // all F32
            U32("llama.vocab_size", (uint)c.VocabSize);
            U32("llama.context_length", (uint)c.MaxPositionEmbeddings);
            U32("llama.embedding_length", (uint)c.HiddenSize);
            U32("llama.block_count", (uint)c.NumHiddenLayers);
            U32("llama.feed_forward_length", (uint)c.IntermediateSize);
            U32("llama.attention.head_count", (uint)c.NumAttentionHeads);
            U32("llama.attention.head_count_kv", (uint)c.NumKeyValueHeads);
            U32("llama.rope.dimension_count", (uint)c.HeadDim);
            F32("llama.rope.freq_base", (float)c.RopeTheta);
            F32("llama.attention.layer_norm_rms_epsilon", (float)c.RmsNormEps);
            var (tokens, scores, types) = DummyVocabulary(c.VocabSize);
            Text("tokenizer.ggml.model", "llama");
            Array("tokenizer.ggml.tokens", TypeString, tokens, Str);
            Array("tokenizer.ggml.scores", TypeF32, scores, w.Write);
            Array("tokenizer.ggml.token_type", TypeI32, types, w.Write);
            U32("tokenizer.ggml.unknown_token_id", 0);
            U32("tokenizer.ggml.bos_token_id", 1);
            U32("tokenizer.ggml.eos_token_id", 2);
            Bool("tokenizer.ggml.add_bos_token", false);

            w.Write(Magic);
            w.Write(3u);
            w.Write((ulong)tensors.Count);
            w.Write((ulong)kv.Count);
            foreach (var write in kv) write();
            ulong offset = 0;
            foreach (var (name, shape, _) in tensors)
            {
                Str(name);
                w.Write((uint)shape.Length);
                foreach (var d in shape.Reverse()) w.Write((ulong)d);                              // ggml: innermost dimension first
                w.Write(TensorF32);
                w.Write(offset);
                offset = Align(offset + 4UL * (ulong)shape.Aggregate(1L, (a, x) => a * x));
            }
            Pad(w);
            foreach (var (_, _, data) in tensors)
            {
                using var scope = NewDisposeScope();
                var host = data().contiguous().to(ScalarType.Float32).cpu();
                w.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(host.data<float>().ToArray().AsSpan()));
                Pad(w);
            }
        });
    }

    static ulong Align(ulong x) => (x + Alignment - 1) / Alignment * Alignment;

    static void Pad(BinaryWriter w)
    {
        w.Flush();
        long pos = w.BaseStream.Position;
        w.Write(new byte[(int)(Align((ulong)pos) - (ulong)pos)]);
    }

    /// <summary>The tensors in file order: llama.cpp's name, the PyTorch shape (outermost first) and the data (made when written).</summary>
    public static List<(string Name, long[] Shape, Func<Tensor> Data)> Tensors(CausalLM model)
    {
        var c = model.Config;
        var p = model.NamedParameters().ToDictionary(x => x.Name, x => (Tensor)x.Param);
        var list = new List<(string, long[], Func<Tensor>)>();
        void Add(string name, string hf, Func<Tensor, Tensor>? f = null)
        {
            var t = p.TryGetValue(hf, out var x) ? x : throw new InvalidOperationException($"GGUF export: the model has no parameter {hf}");
            list.Add((name, t.shape, () => { var d = t.detach(); return f is null ? d : f(d); }));
        }
        Add("token_embd.weight", "model.embed_tokens.weight");
        for (int i = 0; i < c.NumHiddenLayers; i++)
        {
            string hf = $"model.layers.{i}.", g = $"blk.{i}.";
            Add(g + "attn_norm.weight", hf + "input_layernorm.weight");
            Add(g + "attn_q.weight", hf + "self_attn.q_proj.weight", t => RopePermute(t, c.NumAttentionHeads));
            Add(g + "attn_k.weight", hf + "self_attn.k_proj.weight", t => RopePermute(t, c.NumKeyValueHeads));
            Add(g + "attn_v.weight", hf + "self_attn.v_proj.weight");
            if (c.AttentionBias)
            {
                Add(g + "attn_q.bias", hf + "self_attn.q_proj.bias", t => RopePermute(t, c.NumAttentionHeads));
                Add(g + "attn_k.bias", hf + "self_attn.k_proj.bias", t => RopePermute(t, c.NumKeyValueHeads));
                Add(g + "attn_v.bias", hf + "self_attn.v_proj.bias");
            }
            Add(g + "attn_output.weight", hf + "self_attn.o_proj.weight");
            Add(g + "ffn_norm.weight", hf + "post_attention_layernorm.weight");
            Add(g + "ffn_gate.weight", hf + "mlp.gate_proj.weight");
            Add(g + "ffn_up.weight", hf + "mlp.up_proj.weight");
            Add(g + "ffn_down.weight", hf + "mlp.down_proj.weight");
        }
        Add("output_norm.weight", "model.norm.weight");
        if (!c.TieWordEmbeddings) Add("output.weight", "lm_head.weight");
        return list;
    }

    /// <summary>
    /// HF's rotary layout pairs dimension j with j + hd/2 of each head (rotate_half); llama.cpp's
    /// <c>llama</c> rotary pairs 2j with 2j + 1. Reordering each head's output rows (or bias entries)
    /// as [0, hd/2, 1, hd/2 + 1, …] makes the second compute the first's attention scores
    /// (convert_hf_to_gguf.py's LlamaModel.permute): rows [heads·hd, …] → (heads, 2, hd/2, …) → swap
    /// the middle two axes → back.
    /// </summary>
    public static Tensor RopePermute(Tensor w, int heads)
    {
        long rows = w.shape[0], half = rows / heads / 2;
        var rest = w.shape.Skip(1).ToArray();
        return w.reshape([heads, 2, half, .. rest]).transpose(1, 2).reshape(w.shape);
    }

    static (string[] Tokens, float[] Scores, int[] Types) DummyVocabulary(int size)
    {
        if (size < 3 + 256) throw new ArgumentException($"GGUF export: a vocabulary of {size} tokens is too small for the dummy SentencePiece vocabulary (needs ≥ 259)");
        var tokens = new string[size];
        var types = new int[size];
        tokens[0] = "<unk>"; types[0] = 2;                                                      // unknown
        tokens[1] = "<s>"; types[1] = 3;                                                        // control
        tokens[2] = "</s>"; types[2] = 3;
        for (int b = 0; b < 256; b++) { tokens[3 + b] = $"<0x{b:X2}>"; types[3 + b] = 6; }      // byte
        for (int i = 259; i < size; i++) { tokens[i] = $"▁t{i}"; types[i] = 1; }               // normal
        return (tokens, new float[size], types);
    }
}
