using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SimKO.Host.Model;

/// <summary>RMSNorm: x · rsqrt(mean(x²) + ε) · weight, computed in float32.</summary>
public sealed class RMSNorm : Module<Tensor, Tensor>
{
    readonly Parameter weight;
    // the exponent and ε as Scalars made once: an implicit conversion makes (and frees) a native Scalar per use,
    // ~1.5 µs each, and a decode step runs 2 norms per layer
    readonly Scalar _eps;
    static readonly Scalar Two = 2;

    public RMSNorm(long dim, double eps, Device? device = null, ScalarType? dtype = null) : base(nameof(RMSNorm))
    {
        weight = new Parameter(ones(dim, dtype, device));
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        // (no dtype round trip for a float32 input: two fewer ops per norm in decoding, the same values)
        bool f32 = x.dtype == ScalarType.Float32;
        var x32 = f32 ? x : x.to(ScalarType.Float32);
        var normed = x32 * x32.pow(Two).mean([-1], keepdim: true).add(_eps).rsqrt();
        return weight * (f32 ? normed : normed.to(x.dtype));
    }
}

/// <summary>SwiGLU feed-forward: down(silu(gate(x)) · up(x)).</summary>
public sealed class Mlp : Module<Tensor, Tensor>
{
    public readonly LoraLinear gate_proj, up_proj, down_proj;

    public Mlp(long dim, long hidden, Device? device = null, ScalarType? dtype = null) : base(nameof(Mlp))
    {
        _hidden = hidden;
        gate_proj = new LoraLinear(dim, hidden, hasBias: false, device: device, dtype: dtype);
        up_proj = new LoraLinear(dim, hidden, hasBias: false, device: device, dtype: dtype);
        down_proj = new LoraLinear(hidden, dim, hasBias: false, device: device, dtype: dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Forward(x, DecodeLinear.Path.Linear);

    /// <param name="x">[..., d]</param>
    /// <param name="path">the forward's product (<see cref="DecodeLinear.Choose"/>)</param>
    public Tensor Forward(Tensor x, DecodeLinear.Path path)
    {
        if (_gateUp is { } j && j.UsableFor(path))
        {
            var both = DecodeLinear.Forward(x, j.Weight, j.Bias, path);                   // (..., 2·hidden)
            return down_proj.Forward(functional.silu(both.narrow(-1, 0, _hidden)) * both.narrow(-1, _hidden, _hidden), path);
        }
        return down_proj.Forward(functional.silu(gate_proj.Forward(x, path)) * up_proj.Forward(x, path), path);
    }

    /// <summary>gate and up as one product while sampling on the CPU (<see cref="JointRows"/>).</summary>
    JointRows? _gateUp;
    readonly long _hidden;

    internal void JoinProjections() { _gateUp?.Dispose(); _gateUp = JointRows.Join(gate_proj, up_proj); }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _gateUp?.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// Keys and values of earlier positions, per layer, in buffers [B, n_kv, capacity, head_dim]
/// allocated once (no copy of the whole cache per step); the first <see cref="Length"/> positions
/// are filled. A step that would overflow the capacity doubles it.
/// </summary>
public sealed class KvCache(int layers, int capacity = 0) : IDisposable
{
    readonly Tensor?[] _keys = new Tensor?[layers], _values = new Tensor?[layers];
    readonly long[] _lengths = new long[layers];

    public long Length => _lengths[0];

    /// <summary>Append k, v [B, n_kv, T, hd] at layer <paramref name="layer"/>; returns all keys and
    /// values so far (views of the buffers, [B, n_kv, Length, hd]).</summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        long len = _lengths[layer], t = k.shape[2];
        if (_keys[layer] is null || len + t > _keys[layer]!.shape[2])
        {
            long cap = System.Math.Max(System.Math.Max(capacity, len + t), 2 * (_keys[layer]?.shape[2] ?? 0));
            _keys[layer] = Grow(_keys[layer], k, cap, len);
            _values[layer] = Grow(_values[layer], v, cap, len);
        }
        using (no_grad())
        {
            _keys[layer]!.narrow(2, len, t).copy_(k);
            _values[layer]!.narrow(2, len, t).copy_(v);
        }
        _lengths[layer] = len + t;
        return (_keys[layer]!.narrow(2, 0, len + t), _values[layer]!.narrow(2, 0, len + t));
    }

    static Tensor Grow(Tensor? old, Tensor like, long capacity, long keep)
    {
        var buffer = zeros([like.shape[0], like.shape[1], capacity, like.shape[3]], like.dtype, like.device).DetachFromDisposeScope();
        if (old is not null)
        {
            using (no_grad()) buffer.narrow(2, 0, keep).copy_(old.narrow(2, 0, keep));
            old.Dispose();
        }
        return buffer;
    }

    /// <summary>Keep only the given batch rows (e.g. drop finished sequences).</summary>
    public void Select(Tensor rows)
    {
        for (int i = 0; i < _keys.Length; i++)
        {
            if (_keys[i] is null) continue;
            var k = _keys[i]!.index_select(0, rows).DetachFromDisposeScope();
            var v = _values[i]!.index_select(0, rows).DetachFromDisposeScope();
            _keys[i]!.Dispose(); _values[i]!.Dispose();
            _keys[i] = k; _values[i] = v;
        }
    }

    // ---- for the slot operations of continuous batching (Rollout/KvCacheSlots.cs) ----

    /// <summary>Decoder layers held.</summary>
    internal int Layers => _keys.Length;

    /// <summary>Layer <paramref name="layer"/>'s key and value buffers [B, n_kv, capacity, hd] (null before its first append).</summary>
    internal (Tensor? Keys, Tensor? Values) Buffers(int layer) => (_keys[layer], _values[layer]);

    /// <summary>Replace layer <paramref name="layer"/>'s buffers (the old ones are disposed unless reused) and its filled length.</summary>
    internal void Replace(int layer, Tensor keys, Tensor values, long length)
    {
        if (!ReferenceEquals(_keys[layer], keys)) _keys[layer]?.Dispose();
        if (!ReferenceEquals(_values[layer], values)) _values[layer]?.Dispose();
        _keys[layer] = keys; _values[layer] = values; _lengths[layer] = length;
    }

    public void Dispose()
    {
        foreach (var t in _keys) t?.Dispose();
        foreach (var t in _values) t?.Dispose();
    }
}

/// <summary>Grouped-query self-attention with rotary embeddings (optional q/k/v biases, Qwen2).</summary>
public sealed class Attention : Module
{
    public readonly LoraLinear q_proj, k_proj, v_proj, o_proj;
    readonly int _heads, _kvHeads, _headDim;

    public Attention(ModelConfig c, Device? device = null, ScalarType? dtype = null) : base(nameof(Attention))
    {
        _heads = c.NumAttentionHeads; _kvHeads = c.NumKeyValueHeads; _headDim = c.HeadDim;
        q_proj = new LoraLinear(c.HiddenSize, _heads * _headDim, hasBias: c.AttentionBias, device: device, dtype: dtype);
        k_proj = new LoraLinear(c.HiddenSize, _kvHeads * _headDim, hasBias: c.AttentionBias, device: device, dtype: dtype);
        v_proj = new LoraLinear(c.HiddenSize, _kvHeads * _headDim, hasBias: c.AttentionBias, device: device, dtype: dtype);
        o_proj = new LoraLinear(_heads * _headDim, c.HiddenSize, hasBias: false, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="x">[B, T, d]</param>
    /// <param name="cos">[B, 1, T, hd] rotary cosines of the positions of x</param>
    /// <param name="sin">[B, 1, T, hd] rotary sines with the first half negated (<see cref="Rotary.SignedSin"/>)</param>
    /// <param name="mask">[B, 1, T, T_past + T]: boolean, true = may attend, or additive float, 0 = may attend and −∞ = not</param>
    /// <param name="path">the forward's product (<see cref="DecodeLinear.Choose"/>)</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, KvCache? cache, int layer, DecodeLinear.Path path = DecodeLinear.Path.Linear)
    {
        long b = x.shape[0], t = x.shape[1];
        // one decoded token (T = 1): [B, 1, n·hd] is already [B, n, 1, hd] in memory, one view instead of view + transpose
        Tensor Heads(Tensor y, int n) => t == 1 ? y.view(b, n, 1, _headDim) : y.view(b, t, n, _headDim).transpose(1, 2);
        Tensor q, k, v;
        if (_qkv is { } j && j.UsableFor(path))
        {
            long nq = _heads * _headDim, nkv = _kvHeads * _headDim;
            var qkv = DecodeLinear.Forward(x, j.Weight, j.Bias, path);                    // (B, T, (nh + 2·nkv)·hd)
            // q and k sit side by side in the product: rotated together (4 ops instead of 8, the same values element by
            // element), then split into their heads
            var qk = Rotate(Heads(qkv.narrow(-1, 0, nq + nkv), _heads + _kvHeads), cos, sin); // (B, nh + nkv, T, hd)
            q = qk.narrow(1, 0, _heads);                                                  // (B, nh, T, hd)
            k = qk.narrow(1, _heads, _kvHeads);                                           // (B, nkv, T, hd)
            v = Heads(qkv.narrow(-1, nq + nkv, nkv), _kvHeads);
        }
        else
        {
            q = Rotate(Heads(q_proj.Forward(x, path), _heads), cos, sin);               // (B, nh, T, hd)
            k = Rotate(Heads(k_proj.Forward(x, path), _kvHeads), cos, sin);             // (B, nkv, T, hd)
            v = Heads(v_proj.Forward(x, path), _kvHeads);                                // (B, nkv, T, hd)
        }
        if (cache is not null)
            (k, v) = cache.Append(layer, k.requires_grad ? k.detach() : k, v.requires_grad ? v.detach() : v);   // (B, nkv, T_past+T, hd)
        if (_kvHeads != _heads)
        {
            k = k.repeat_interleave(_heads / _kvHeads, dim: 1);                          // (B, nh, S, hd)
            v = v.repeat_interleave(_heads / _kvHeads, dim: 1);
        }
        var y = functional.scaled_dot_product_attention(q, k, v, attn_mask: mask);       // (B, nh, T, hd)
        return o_proj.Forward((t == 1 ? y : y.transpose(1, 2)).reshape(b, t, _heads * _headDim), path);   // (B, T, d)
    }

    /// <summary>HF's x·cos + rotate_half(x)·sin for x [B, n, T, hd].</summary>
    static Tensor Rotate(Tensor x, Tensor cos, Tensor sin) => x * cos + RotateHalf(x) * sin;

    /// <summary>[x2, x1] of x = [x1, x2] (one roll): with the signed sines this is HF's rotate_half(x)·sin =
    /// [−x2, x1]·sin bit for bit (negating a factor is exact), in one op instead of four.</summary>
    static Tensor RotateHalf(Tensor x) => x.roll(x.shape[^1] / 2, -1);

    /// <summary>q, k and v as one product while sampling on the CPU (<see cref="JointRows"/>).</summary>
    JointRows? _qkv;

    internal void JoinProjections() { _qkv?.Dispose(); _qkv = JointRows.Join(q_proj, k_proj, v_proj); }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _qkv?.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>Pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(x)).</summary>
public sealed class DecoderLayer : Module
{
    readonly RMSNorm input_layernorm, post_attention_layernorm;
    public readonly Attention self_attn;
    public readonly Mlp mlp;

    public DecoderLayer(ModelConfig c, Device? device = null, ScalarType? dtype = null) : base(nameof(DecoderLayer))
    {
        input_layernorm = new RMSNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        self_attn = new Attention(c, device, dtype);
        post_attention_layernorm = new RMSNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        mlp = new Mlp(c.HiddenSize, c.IntermediateSize, device, dtype);
        RegisterComponents();
    }

    /// <param name="path">the forward's product (<see cref="DecodeLinear.Choose"/>)</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, KvCache? cache, int layer, DecodeLinear.Path path = DecodeLinear.Path.Linear)
    {
        var h = x + self_attn.Forward(input_layernorm.forward(x), cos, sin, mask, cache, layer, path);
        return h + mlp.Forward(post_attention_layernorm.forward(h), path);
    }
}

/// <summary>The decoder body (HF "model."): embeddings, layers, final norm.</summary>
public sealed class DecoderModel : Module
{
    public readonly Embedding embed_tokens;
    public readonly ModuleList<DecoderLayer> layers;
    public readonly RMSNorm norm;

    public DecoderModel(ModelConfig c, Device? device = null, ScalarType? dtype = null) : base(nameof(DecoderModel))
    {
        embed_tokens = Embedding(c.VocabSize, c.HiddenSize, device: device, dtype: dtype);
        layers = new ModuleList<DecoderLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new DecoderLayer(c, device, dtype)).ToArray());
        norm = new RMSNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        RegisterComponents();
    }
}

/// <summary>
/// A decoder-only causal LM matching HF's Qwen2ForCausalLM / LlamaForCausalLM: parameter names are
/// the checkpoint's tensor names (model.layers.0.self_attn.q_proj.weight, …), so loading is a name map.
/// </summary>
public sealed class CausalLM : Module
{
    public readonly DecoderModel model;
    readonly Linear? lm_head;
    readonly Tensor _invFreq;
    Tensor? _invFreqOnDevice;

    public ModelConfig Config { get; }

    /// <summary>A model with its parameters created directly on <paramref name="device"/> in
    /// <paramref name="dtype"/> (default: CPU, float32), so loading a large checkpoint never builds
    /// a float32 CPU copy first.</summary>
    public CausalLM(ModelConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(CausalLM))
    {
        var problems = config.Validate();
        if (problems.Count > 0) throw new ArgumentException("invalid model config: " + string.Join("; ", problems));
        Config = config;
        model = new DecoderModel(config, device, dtype);
        if (!config.TieWordEmbeddings) lm_head = Linear(config.HiddenSize, config.VocabSize, hasBias: false, device: device, dtype: dtype);
        RegisterComponents();
        _invFreq = Rotary.InverseFrequencies(config).DetachFromDisposeScope();
        JoinProjections();
    }

    /// <summary>Each layer's q/k/v and gate/up weights as row blocks of one tensor (<see cref="JointRows"/>;
    /// nothing is joined off the CPU). At construction and after <see cref="MoveTo"/>, which makes new parameters.</summary>
    void JoinProjections()
    {
        foreach (var layer in model.layers)
        {
            layer.self_attn.JoinProjections();
            layer.mlp.JoinProjections();
        }
    }

    /// <summary>Move parameters to a device and dtype (float32 on CPU; bfloat16 for CUDA).</summary>
    public CausalLM MoveTo(Device device, ScalarType dtype)
    {
        _to(device, dtype, false);
        JoinProjections();
        return this;
    }

    /// <summary>Initialise like HF (normal(0, 0.02) weights, zero biases, unit norms), from a seed.</summary>
    public void InitWeights(long seed)
    {
        using var _ = no_grad();
        var gen = new Generator((ulong)seed);
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith("layernorm.weight") || name.EndsWith("norm.weight")) p.fill_(1.0);
            else if (name.EndsWith(".bias")) p.zero_();
            else p.copy_(normal(0, 0.02, p.shape, p.dtype, p.device, generator: gen));
        }
    }

    /// <summary>
    /// Gradient checkpointing per decoder layer: in training only each layer's input is kept, and
    /// the layer is recomputed in backward (<see cref="LayerCheckpoint"/>). Off: every layer's
    /// intermediates that backward needs stay until backward.
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>The LM head's weight [V, d] (HF layout): lm_head.weight, or the embedding when tied.</summary>
    public Tensor HeadWeight => lm_head is not null ? lm_head.weight! : model.embed_tokens.weight!;

    /// <summary>
    /// Logits [B, T, V] of the next token at every position.
    /// </summary>
    /// <param name="inputIds">[B, T] int64</param>
    /// <param name="attentionMask">[B, T_past + T] int64/bool, 1 = real token (left padding = 0)</param>
    /// <param name="positions">[B, T] int64 position ids (from the mask's cumulative sum)</param>
    /// <param name="cache">keys/values of the T_past earlier positions, extended in place</param>
    /// <param name="lastPositionOnly">logits of the last position only, [B, 1, V] (a sampler's prefill: the LM head
    /// is then B rows instead of B · T)</param>
    public Tensor Forward(Tensor inputIds, Tensor attentionMask, Tensor positions, KvCache? cache = null, bool lastPositionOnly = false)
    {
        var x = Hidden(inputIds, attentionMask, positions, cache);                        // (B, T, d)
        if (lastPositionOnly) x = x.narrow(1, x.shape[1] - 1, 1);                         // (B, 1, d)
        var logits = DecodeLinear.Forward(x, HeadWeight, null, DecodeLinear.Choose(x, cache is not null));   // (B, T, V)
        Lap(model.layers.Count + 1);
        return logits;
    }

    /// <summary>When set (`bench --only decode`), each forward adds its phases' wall seconds here:
    /// [0] embedding, rotary and mask, [1 + i] decoder layer i, [layers + 1] final norm and LM head.
    /// CPU ops run synchronously, so the split is exact on CPU; on a GPU it measures launches only.</summary>
    public double[]? PhaseSeconds { get; set; }
    readonly System.Diagnostics.Stopwatch _lap = new();

    void Lap(int phase)
    {
        if (PhaseSeconds is null) return;
        PhaseSeconds[phase] += _lap.Elapsed.TotalSeconds;
        _lap.Restart();
    }

    /// <summary>Final normed hidden states [B, T, d] (the LM head's input); arguments as <see cref="Forward"/>.</summary>
    public Tensor Hidden(Tensor inputIds, Tensor attentionMask, Tensor positions, KvCache? cache = null)
    {
        long b = inputIds.shape[0], t = inputIds.shape[1];
        long past = cache?.Length ?? 0;
        if (PhaseSeconds is not null) _lap.Restart();
        var x = model.embed_tokens.forward(inputIds);                                     // (B, T, d)
        var inv = _invFreq.device == x.device ? _invFreq : (_invFreqOnDevice ??= _invFreq.to(x.device).DetachFromDisposeScope());
        var (cos, sin) = Rotary.CosSin(inv, positions, x.dtype);                           // (B, 1, T, hd)
        sin = Rotary.SignedSin(sin);                                                       // (B, 1, T, hd)
        // causal: query i (absolute past + i) may see key j ≤ past + i, and only real keys
        var keyPos = arange(past + t, device: x.device).view(1, 1, 1, past + t);          // (1, 1, 1, S)
        var queryPos = (arange(t, device: x.device) + past).view(1, 1, t, 1);             // (1, 1, T, 1)
        var real = attentionMask.to(ScalarType.Bool).view(b, 1, 1, past + t);             // (B, 1, 1, S)
        var mask = keyPos.le(queryPos).logical_and(real);                                  // (B, 1, T, S)
        // a padded query row would see no key at all (NaN in softmax): let it see itself
        mask = mask.logical_or(keyPos.eq(queryPos));
        // a decode step's mask as SDPA's additive float mask (0 or −∞), made once here instead of by SDPA in every
        // layer (what it does with a boolean mask): the same scores; [B, 1, 1, S] is small (a long prefill's
        // [B, 1, T, S] stays boolean, a quarter of the bytes)
        if (t == 1) mask = zeros(mask.shape, x.dtype, x.device).masked_fill_(mask.logical_not(), double.NegativeInfinity);
        bool checkpoint = GradientCheckpointing && cache is null && is_grad_enabled();
        // a frozen embedding (LoRA) gives an input without gradient: the checkpointed layer would then
        // have none either and its adapters no gradient (PEFT's enable_input_require_grads)
        if (checkpoint && !x.requires_grad) x = x.detach().requires_grad_(true);
        var path = DecodeLinear.Choose(x, cache is not null);                              // one product choice for the forward
        Lap(0);
        for (int i = 0; i < model.layers.Count; i++)
        {
            var layer = model.layers[i];
            int index = i;
            if (checkpoint)
                x = LayerCheckpoint.Apply(h => layer.Forward(h, cos, sin, mask, null, index), x);
            else
            {
                // one dispose scope per layer: what backward needs is held by the autograd graph,
                // every other intermediate of the layer dies here
                using var scope = NewDisposeScope();
                x = layer.Forward(x, cos, sin, mask, cache, i, path).MoveToOuterDisposeScope();
            }
            Lap(i + 1);
        }
        return model.norm.forward(x);
    }

    /// <summary>The decoder's linear projections by HF name (model.layers.i.self_attn.q_proj, …), in layer order.</summary>
    public IReadOnlyList<(string Name, string Module, LoraLinear Layer)> Projections()
    {
        var list = new List<(string, string, LoraLinear)>();
        for (int i = 0; i < model.layers.Count; i++)
        {
            var l = model.layers[i];
            foreach (var (module, layer) in new[] { ("q_proj", l.self_attn.q_proj), ("k_proj", l.self_attn.k_proj), ("v_proj", l.self_attn.v_proj), ("o_proj", l.self_attn.o_proj) })
                list.Add(($"model.layers.{i}.self_attn.{module}", module, layer));
            foreach (var (module, layer) in new[] { ("gate_proj", l.mlp.gate_proj), ("up_proj", l.mlp.up_proj), ("down_proj", l.mlp.down_proj) })
                list.Add(($"model.layers.{i}.mlp.{module}", module, layer));
        }
        return list;
    }

    /// <summary>The adapters' settings, or null when the model has none.</summary>
    public LoraSettings? Lora { get; private set; }

    /// <summary>
    /// Attach LoRA adapters to the targeted projections (PEFT's initialisation from <paramref name="seed"/>:
    /// A Kaiming-uniform, B = 0, so the model's outputs are unchanged) and freeze every base weight
    /// (no gradient: backward computes none for them, and the optimizer is given only the adapters).
    /// Attach after moving the model to its device and dtype; the adapters are created there.
    /// </summary>
    public void AttachLora(LoraSettings settings, long seed)
    {
        if (settings.Rank < 1) throw new ArgumentException($"lora rank must be >= 1, got {settings.Rank}");
        var unknown = settings.TargetModules.Where(m => !LoraSettings.AllProjections.Contains(m)).ToList();
        if (unknown.Count > 0) throw new ArgumentException($"lora target modules {string.Join(", ", unknown)} are not projections of the decoder ({string.Join(", ", LoraSettings.AllProjections)})");
        var gen = new Generator((ulong)seed);
        foreach (var (_, module, layer) in Projections())
        {
            if (settings.TargetModules.Contains(module)) layer.AttachAdapter(settings.Rank, settings.Scaling, settings.Dropout, gen);
            else layer.DetachAdapter();
        }
        foreach (var p in parameters()) p.requires_grad = false;
        Lora = settings;
    }

    /// <summary>Remove every adapter: the model is its base again (its weights stay frozen).</summary>
    public void DetachLora()
    {
        foreach (var (_, _, layer) in Projections()) layer.DetachAdapter();
        Lora = null;
    }

    /// <summary>Adapter tensors by name (&lt;projection&gt;.lora_A.weight [r, in], &lt;projection&gt;.lora_B.weight [out, r];
    /// PEFT's file adds the prefix base_model.model.); empty without adapters.</summary>
    public IReadOnlyList<(string Name, Parameter Param)> LoraParameters()
    {
        var list = new List<(string, Parameter)>();
        foreach (var (name, _, layer) in Projections())
            if (layer.LoraA is { } a && layer.LoraB is { } b)
            {
                list.Add(($"{name}.lora_A.weight", a));
                list.Add(($"{name}.lora_B.weight", b));
            }
        return list;
    }

    /// <summary>Whether the adapters take part in forward; off, the model is its base (the KL reference
    /// of a LoRA run, without a second copy of the weights).</summary>
    public bool AdaptersEnabled
    {
        get => Projections().All(p => p.Layer.AdapterEnabled);
        set { foreach (var (_, _, layer) in Projections()) layer.AdapterEnabled = value; }
    }

    /// <summary>Parameters by HF name with every adapter merged in (W + s·B·A, PEFT's merge_and_unload),
    /// in float32; the other parameters as they are.</summary>
    public Dictionary<string, Tensor> MergedWeights()
    {
        var merged = Projections().Where(p => p.Layer.LoraA is not null).ToDictionary(p => p.Name + ".weight", p => p.Layer.MergedWeight());
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, p) in NamedParameters()) result[name] = merged.TryGetValue(name, out var w) ? w : p;
        return result;
    }

    /// <summary>Position ids from an attention mask [B, T]: cumulative count of real tokens − 1 (0 on padding).</summary>
    public static Tensor PositionsFromMask(Tensor attentionMask) =>
        (attentionMask.to(ScalarType.Int64).cumsum(1) - 1).clamp_min(0);

    /// <summary>Parameters by HF checkpoint name.</summary>
    public IReadOnlyList<(string Name, Parameter Param)> NamedParameters() =>
        named_parameters().Select(p => (p.name, p.parameter)).ToList();
}

/// <summary>
/// Gradient checkpointing of one decoder layer as a custom autograd function (TorchSharp has no
/// torch.utils.checkpoint): forward runs the layer without gradient in its own dispose scope and
/// keeps only its input; backward recomputes the layer with gradient from that input and
/// back-propagates the incoming gradient through it (a nested backward, as PyTorch's reentrant
/// checkpoint does), which accumulates the layer's parameter gradients and gives the input's.
/// The layer must be deterministic (no dropout here), so the recomputation equals the forward.
/// </summary>
public sealed class LayerCheckpoint : autograd.SingleTensorFunction<LayerCheckpoint>
{
    public override string Name => "SimKOLayerCheckpoint";

    // The input gradient handed to autograd last time: autograd holds its own reference to it, so
    // our wrapper is released at the next call instead of waiting for the finalizer.
    static Tensor? _lastInputGrad;
    static readonly object Gate = new();

    /// <summary>y = layer(x) with only x kept for backward.</summary>
    public static Tensor Apply(Func<Tensor, Tensor> layer, Tensor x) => apply(x, layer);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var layer = (Func<Tensor, Tensor>)vars[1];
        ctx.save_for_backward([x]);
        ctx.save_data("layer", layer);
        using var scope = NewDisposeScope();
        return layer(x).MoveToOuterDisposeScope();
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var layer = (Func<Tensor, Tensor>)ctx.get_data("layer");
        Tensor inputGrad;
        using (var scope = NewDisposeScope())
        {
            var x = ctx.get_saved_variables()[0].detach().requires_grad_(true);          // (B, T, d)
            using (enable_grad())
            {
                Tensor y;
                // the recomputed intermediates are held by the autograd graph only (not by this
                // scope), so backward frees each as soon as it is used
                using (var forward = NewDisposeScope())
                    y = layer(x).MoveToOuterDisposeScope();                                // (B, T, d) recomputed
                autograd.backward([y], [gradOutput]);
            }
            inputGrad = x.grad!.detach().DetachFromDisposeScope();
        }
        lock (Gate)
        {
            _lastInputGrad?.Dispose();
            _lastInputGrad = inputGrad;
        }
        return [inputGrad, null!];
    }
}

/// <summary>Rotary position embeddings (theta from the config; Llama-3 frequency scaling).</summary>
public static class Rotary
{
    public static Tensor InverseFrequencies(ModelConfig c)
    {
        int hd = c.HeadDim;
        var inv = new double[hd / 2];
        for (int i = 0; i < hd / 2; i++) inv[i] = 1.0 / System.Math.Pow(c.RopeTheta, 2.0 * i / hd);
        if (c.RopeScaling is { } s)
        {
            double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
            double highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
            for (int i = 0; i < inv.Length; i++)
            {
                double wavelen = 2 * System.Math.PI / inv[i];
                if (wavelen > lowWavelen) inv[i] /= s.Factor;
                else if (wavelen >= highWavelen)
                {
                    double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                    inv[i] = (1 - smooth) * inv[i] / s.Factor + smooth * inv[i];
                }
            }
        }
        return tensor(inv, ScalarType.Float32);
    }

    /// <summary>sin [.., hd] (two equal halves, from <see cref="CosSin"/>) with its first half negated: the factor of
    /// the rolled [x2, x1] in <c>x·cos + [x2, x1]·signed</c>, which is HF's <c>x·cos + rotate_half(x)·sin</c>.</summary>
    public static Tensor SignedSin(Tensor sin)
    {
        long half = sin.shape[^1] / 2;
        return cat([-sin.narrow(-1, 0, half), sin.narrow(-1, half, half)], -1);
    }

    /// <summary>cos and sin [B, 1, T, hd] for positions [B, T].</summary>
    public static (Tensor Cos, Tensor Sin) CosSin(Tensor invFreq, Tensor positions, ScalarType dtype)
    {
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * invFreq;            // (B, T, hd/2)
        var emb = cat([freqs, freqs], -1).unsqueeze(1);                                    // (B, 1, T, hd)
        return (emb.cos().to(dtype), emb.sin().to(dtype));
    }
}
