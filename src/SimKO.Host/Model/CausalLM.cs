using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SimKO.Host.Model;

/// <summary>The body of the decoder: <c>embed_tokens</c>, <c>layers.N</c>, final <c>norm</c> (HF's Qwen2Model/LlamaModel).</summary>
public sealed class DecoderStack : nn.Module
{
    private readonly TokenEmbedding embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly RmsNorm norm;

    public DecoderStack(ModelConfig c, Device device, ScalarType dtype) : base(nameof(DecoderStack))
    {
        embed_tokens = new TokenEmbedding(c.VocabSize, c.HiddenSize, device, dtype);
        layers = new ModuleList<DecoderLayer>();
        for (int i = 0; i < c.NumHiddenLayers; i++) layers.Add(new DecoderLayer(c, device, dtype));
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        RegisterComponents();
    }

    public TokenEmbedding Embeddings => embed_tokens;

    /// <param name="ids"><c>[B, T]</c> int64</param>
    /// <param name="cos"><c>[B, 1, T, hd]</c></param>
    /// <param name="sin"><c>[B, 1, T, hd]</c></param>
    /// <param name="allowed"><c>[B, 1, T, L]</c> bool attention pattern, or null for plain causal</param>
    /// <returns>final normed hidden states <c>[B, T, hidden]</c></returns>
    public Tensor Forward(Tensor ids, Tensor cos, Tensor sin, Tensor? allowed, KvCache? cache)
    {
        Tensor h = embed_tokens.forward(ids);                                    // [B, T, hidden]
        for (int i = 0; i < layers.Count; i++)
        {
            var next = layers[i].Forward(h, cos, sin, allowed, cache, i);
            h.Dispose();
            h = next;
        }
        using (h) return norm.forward(h);
    }
}

/// <summary>
/// A decoder-only causal language model with the HF Qwen2 / Llama architecture and HF parameter
/// names (<c>model.embed_tokens.weight</c>, <c>model.layers.0.self_attn.q_proj.weight</c>, …,
/// <c>model.norm.weight</c>, <c>lm_head.weight</c> unless tied), so checkpoint loading is a name map.
/// <para>Logits are always returned in float32: when the model runs in bfloat16/float16 the LM
/// head runs in that dtype and its output is cast up, as HF does before the loss.</para>
/// </summary>
public sealed class CausalLM : Module<Tensor, Tensor, Tensor>
{
    private readonly DecoderStack model;
    private readonly Projection? lm_head;
    private readonly float[] invFreq;

    /// <summary>The architecture this model was built from.</summary>
    public ModelConfig Config { get; }

    private CausalLM(ModelConfig config, Device device, ScalarType dtype) : base(nameof(CausalLM))
    {
        config.ThrowIfInvalid("CausalLM");
        Config = config;
        model = new DecoderStack(config, device, dtype);
        lm_head = config.TieWordEmbeddings ? null : new Projection(config.HiddenSize, config.VocabSize, false, device, dtype);
        invFreq = Rotary.InverseFrequencies(config.HeadDim, config.RopeTheta, config.RopeScaling).Select(x => (float)x).ToArray();
        RegisterComponents();
    }

    /// <summary>
    /// A model with uninitialised parameters allocated on <paramref name="device"/> in
    /// <paramref name="dtype"/>, to be filled from a checkpoint (see <c>Checkpoints.HfFolder</c>).
    /// </summary>
    public static CausalLM CreateEmpty(ModelConfig config, Device device, ScalarType dtype) => new(config, device, dtype);

    /// <summary>
    /// A randomly initialised model as HF initialises one: linear and embedding weights
    /// ~ N(0, initializer_range²), biases 0, norm weights 1. Drawn on the CPU in float32 from a
    /// generator seeded with <paramref name="seed"/> (torch's global RNG is not touched), then moved.
    /// </summary>
    public static CausalLM CreateRandom(ModelConfig config, long seed, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var m = new CausalLM(config, torch.CPU, ScalarType.Float32);
        using (torch.no_grad())
        using (var g = new Generator((ulong)seed, torch.CPU))
        {
            foreach (var (name, p) in m.named_parameters())
            {
                if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.fill_(1.0);
                else if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
                else p.normal_(0.0, config.InitializerRange, g);
            }
        }
        device ??= torch.CPU;
        if (device.type != DeviceType.CPU) m.to(device);
        if (dtype != ScalarType.Float32) m.to(dtype);
        return m;
    }

    /// <summary>The device of the parameters.</summary>
    public Device Device => model.Embeddings.Weight.device;

    /// <summary>The dtype of the parameters.</summary>
    public ScalarType DType => model.Embeddings.Weight.dtype;

    /// <summary>
    /// Training / scoring forward.
    /// </summary>
    /// <param name="inputIds"><c>[B, T]</c> int64: left-padded prompts followed by right-padded responses</param>
    /// <param name="attentionMask"><c>[B, T]</c> (bool or 0/1 of any dtype): 1 on real tokens, 0 on padding.
    /// Position ids are its cumulative sum minus one, so left padding does not shift positions;
    /// padding never serves as a key (a padding query attends only to itself, giving finite,
    /// meaningless logits that the caller masks out)</param>
    /// <returns>logits <c>[B, T, V]</c> float32</returns>
    public override Tensor forward(Tensor inputIds, Tensor attentionMask) => Forward(inputIds, attentionMask, lastOnly: false);

    /// <summary>As <see cref="forward"/>; with <paramref name="lastOnly"/> only the last position's
    /// logits are computed: <c>[B, 1, V]</c>.</summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask, bool lastOnly)
    {
        CheckIds(inputIds);
        long b = inputIds.shape[0], t = inputIds.shape[1];
        using var valid = attentionMask is null
            ? torch.ones([b, t], ScalarType.Bool, inputIds.device)
            : attentionMask.ne(0);                                               // [B, T] bool
        using var counts = valid.to_type(ScalarType.Int64).cumsum(1);           // [B, T]
        using var positions = counts.sub(1).clamp_min(0);                        // [B, T]
        // Without left (or inner) padding, causal attention alone never lets a real token see
        // padding, and the fused causal kernel needs no mask.
        using var allowed = attentionMask is null || !HasPaddingBeforeTokens(valid) ? null
            : AllowedPattern(valid, 0, t);                                       // [B, 1, T, T]
        using var hidden = Hidden(inputIds, positions, allowed, null);           // [B, T, hidden]
        if (!lastOnly) return Logits(hidden);
        using var last = hidden.narrow(1, t - 1, 1);                             // [B, 1, hidden]
        return Logits(last);
    }

    /// <summary>
    /// Decoding forward: runs <c>T</c> new positions against the cache (prefill with the whole
    /// prompt, then one token per step) and appends their keys/values.
    /// </summary>
    /// <param name="inputIds"><c>[B, T]</c> int64</param>
    /// <param name="positions"><c>[B, T]</c> int64 rotary positions of these tokens</param>
    /// <param name="valid"><c>[B, T]</c> bool: false on padding (never attended later)</param>
    /// <param name="cache">the cache; its <see cref="KvCache.Length"/> grows by T</param>
    /// <returns>logits of the last position, <c>[B, V]</c> float32</returns>
    public Tensor ForwardCached(Tensor inputIds, Tensor positions, Tensor valid, KvCache cache)
    {
        CheckIds(inputIds);
        long t = inputIds.shape[1];
        if (inputIds.shape[0] != cache.Batch)
            throw new ArgumentException($"batch of {inputIds.shape[0]} rows does not match the KV cache's {cache.Batch}.");
        int start = cache.Length;
        cache.WriteValid(valid);
        using var allValid = cache.KeyValid.narrow(1, 0, start + t);             // [B, L]
        using var allowed = AllowedPattern(allValid, start, t);                  // [B, 1, T, L]
        using var hidden = Hidden(inputIds, positions, allowed, cache);          // [B, T, hidden]
        cache.Advance((int)t);
        using var last = hidden.select(1, t - 1);                                // [B, hidden]
        return Logits(last);                                                     // [B, V]
    }

    /// <param name="hidden"><c>[..., hidden]</c> final normed states</param>
    /// <returns><c>[..., V]</c> float32</returns>
    private Tensor Logits(Tensor hidden)
    {
        using var z = lm_head is null
            ? nn.functional.linear(hidden, model.Embeddings.Weight)
            : lm_head.forward(hidden);
        return z.to_type(ScalarType.Float32);
    }

    /// <summary>True if some row has a padding position followed by a real token (a 0 → 1 step in the mask).</summary>
    /// <param name="valid"><c>[B, T]</c> bool</param>
    private static bool HasPaddingBeforeTokens(Tensor valid)
    {
        long t = valid.shape[1];
        if (t < 2) return false;
        using var prev = valid.narrow(1, 0, t - 1);                              // [B, T-1]
        using var next = valid.narrow(1, 1, t - 1);                              // [B, T-1]
        using var rises = next.logical_and(prev.logical_not());
        using var any = rises.any();
        return any.item<bool>();
    }

    private Tensor Hidden(Tensor ids, Tensor positions, Tensor? allowed, KvCache? cache)
    {
        using var inv = torch.tensor(invFreq, ScalarType.Float32, Device);       // [hd/2]
        var (cos, sin) = Rotary.Tables(inv, positions, DType);                   // [B, 1, T, hd] each
        using (cos)
        using (sin)
            return model.Forward(ids, cos, sin, allowed, cache);
    }

    /// <summary>
    /// The attention pattern of <c>T</c> queries at cache positions <c>start .. start+T-1</c> over
    /// keys <c>0 .. L-1</c>: causal, never onto padding keys, and always onto itself (so a padding
    /// query has one finite score instead of none).
    /// </summary>
    /// <param name="keyValid"><c>[B, L]</c> bool</param>
    /// <returns><c>[B, 1, T, L]</c> bool</returns>
    public static Tensor AllowedPattern(Tensor keyValid, long start, long t)
    {
        long l = keyValid.shape[1];
        var dev = keyValid.device;
        using var qpos = torch.arange(start, start + t, ScalarType.Int64, dev).unsqueeze(1); // [T, 1]
        using var kpos = torch.arange(0, l, ScalarType.Int64, dev).unsqueeze(0);             // [1, L]
        using var causal = kpos.le(qpos);                                                     // [T, L]
        using var self = kpos.eq(qpos);                                                       // [T, L]
        using var kv = keyValid.unsqueeze(1).unsqueeze(1);                                    // [B, 1, 1, L]
        using var both = causal.logical_and(kv);                                              // [B, 1, T, L]
        return both.logical_or(self);                                                         // [B, 1, T, L]
    }

    private void CheckIds(Tensor ids)
    {
        if (ids.dim() != 2) throw new ArgumentException($"input ids must be [B, T]; found shape [{string.Join(", ", ids.shape)}].");
        if (ids.dtype != ScalarType.Int64) throw new ArgumentException($"input ids must be int64; found {ids.dtype}.");
    }
}
