using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Model;

/// <summary>
/// Grouped-query self-attention with rotary embeddings. Parameters (HF names): <c>q_proj</c>
/// <c>[n_h·hd, hidden]</c>, <c>k_proj</c>/<c>v_proj</c> <c>[n_kv·hd, hidden]</c> (with biases for
/// Qwen2), <c>o_proj</c> <c>[hidden, n_h·hd]</c>. Query head <c>h</c> reads K/V head
/// <c>h / (n_h / n_kv)</c>, as HF's <c>repeat_kv</c>.
/// </summary>
public sealed class Attention : nn.Module
{
    private readonly Projection q_proj, k_proj, v_proj, o_proj;
    private readonly int nHeads, nKv, headDim;

    public Attention(ModelConfig c, Device device, ScalarType dtype) : base(nameof(Attention))
    {
        nHeads = c.NumAttentionHeads;
        nKv = c.NumKeyValueHeads;
        headDim = c.HeadDim;
        q_proj = new Projection(c.HiddenSize, nHeads * headDim, c.QkvBias, device, dtype);
        k_proj = new Projection(c.HiddenSize, nKv * headDim, c.QkvBias, device, dtype);
        v_proj = new Projection(c.HiddenSize, nKv * headDim, c.QkvBias, device, dtype);
        o_proj = new Projection(nHeads * headDim, c.HiddenSize, c.OutputBias, device, dtype);
        RegisterComponents();
    }

    /// <param name="x"><c>[B, T, hidden]</c></param>
    /// <param name="cos"><c>[B, 1, T, hd]</c> rotary table</param>
    /// <param name="sin"><c>[B, 1, T, hd]</c> rotary table</param>
    /// <param name="allowed"><c>[B, 1, T, L]</c> bool, true where query t may attend key l
    /// (L = T without a cache, cache length + T with one); null for plain causal attention
    /// without a cache</param>
    /// <param name="cache">the KV cache, or null for a full forward</param>
    /// <param name="layer">this layer's index in the cache</param>
    /// <returns><c>[B, T, hidden]</c></returns>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? allowed, KvCache? cache, int layer)
    {
        long b = x.shape[0], t = x.shape[1];
        using var qp = q_proj.forward(x);                                        // [B, T, n_h*hd]
        using var kp = k_proj.forward(x);                                        // [B, T, n_kv*hd]
        using var vp = v_proj.forward(x);                                        // [B, T, n_kv*hd]
        using var q0 = qp.view(b, t, nHeads, headDim).transpose(1, 2);           // [B, n_h, T, hd]
        using var k0 = kp.view(b, t, nKv, headDim).transpose(1, 2);              // [B, n_kv, T, hd]
        using var v = vp.view(b, t, nKv, headDim).transpose(1, 2);               // [B, n_kv, T, hd]
        using var q = Rotary.Apply(q0, cos, sin);                                // [B, n_h, T, hd]
        using var k = Rotary.Apply(k0, cos, sin);                                // [B, n_kv, T, hd]

        Tensor keys = k, vals = v;
        if (cache is not null) (keys, vals) = cache.Append(layer, k, v);        // [B, n_kv, L, hd]
        try
        {
            using var attn = GroupedAttention(q, keys, vals, allowed);           // [B, n_h, T, hd]
            using var merged = attn.transpose(1, 2).reshape(b, t, nHeads * headDim); // [B, T, n_h*hd]
            return o_proj.forward(merged);                                       // [B, T, hidden]
        }
        finally
        {
            if (cache is not null) { keys.Dispose(); vals.Dispose(); }
        }
    }

    /// <summary>
    /// Softmax attention where each K/V head serves <c>rep = n_h / n_kv</c> query heads.
    /// One new token per row (decoding): the rep query heads of a group are stacked along the
    /// query axis, so the cached K/V are read as they are, never copied. Several tokens: K/V are
    /// expanded to n_h heads (as HF's repeat_kv), which keeps the mask at <c>[B, 1, T, L]</c>.
    /// </summary>
    /// <param name="q"><c>[B, n_h, T, hd]</c></param>
    /// <param name="k"><c>[B, n_kv, L, hd]</c></param>
    /// <param name="v"><c>[B, n_kv, L, hd]</c></param>
    /// <param name="allowed"><c>[B, 1, T, L]</c> bool, or null for plain causal attention (T = L)</param>
    /// <returns><c>[B, n_h, T, hd]</c></returns>
    private Tensor GroupedAttention(Tensor q, Tensor k, Tensor v, Tensor? allowed)
    {
        int rep = nHeads / nKv;
        bool causal = allowed is null;
        if (rep == 1)
            return nn.functional.scaled_dot_product_attention(q, k, v, allowed, is_casual: causal);
        long b = q.shape[0], t = q.shape[2], l = k.shape[2];
        if (t == 1 && allowed is not null)
        {
            using var qg = q.reshape(b, nKv, rep, headDim);                          // [B, n_kv, rep, hd]
            using var mg = allowed.expand(b, 1, rep, l);                             // [B, 1, rep, L]
            using var og = nn.functional.scaled_dot_product_attention(qg, k, v, mg); // [B, n_kv, rep, hd]
            return og.reshape(b, nHeads, 1, headDim);                                // [B, n_h, 1, hd]
        }
        using var kx = k.unsqueeze(2).expand(b, nKv, rep, l, headDim).reshape(b, nHeads, l, headDim); // [B, n_h, L, hd]
        using var vx = v.unsqueeze(2).expand(b, nKv, rep, l, headDim).reshape(b, nHeads, l, headDim); // [B, n_h, L, hd]
        return nn.functional.scaled_dot_product_attention(q, kx, vx, allowed, is_casual: causal);
    }
}

/// <summary>One pre-norm decoder block: <c>h = x + attn(norm(x))</c>, <c>out = h + mlp(norm(h))</c>.</summary>
public sealed class DecoderLayer : nn.Module
{
    private readonly RmsNorm input_layernorm, post_attention_layernorm;
    private readonly Attention self_attn;
    private readonly Mlp mlp;

    public DecoderLayer(ModelConfig c, Device device, ScalarType dtype) : base(nameof(DecoderLayer))
    {
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        self_attn = new Attention(c, device, dtype);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        mlp = new Mlp(c, device, dtype);
        RegisterComponents();
    }

    /// <param name="x"><c>[B, T, hidden]</c></param>
    /// <returns><c>[B, T, hidden]</c></returns>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? allowed, KvCache? cache, int layer)
    {
        using var n1 = input_layernorm.forward(x);
        using var a = self_attn.Forward(n1, cos, sin, allowed, cache, layer);
        using var h = x.add(a);
        using var n2 = post_attention_layernorm.forward(h);
        using var m = mlp.forward(n2);
        return h.add(m);
    }
}
