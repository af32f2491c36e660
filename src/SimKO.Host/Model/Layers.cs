using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SimKO.Host.Model;

// The leaf layers of the decoder. Parameters are created uninitialised (torch.empty) on the target
// device and dtype, so loading a large checkpoint never pays for a random init and never touches
// torch's global RNG; CausalLM.CreateRandom fills them from a seeded generator.

/// <summary>y = x Wᵀ (+ b). Parameter names <c>weight</c> <c>[out, in]</c> and <c>bias</c> <c>[out]</c>, as HF's nn.Linear.</summary>
public sealed class Projection : Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter? bias;

    public Projection(long inFeatures, long outFeatures, bool hasBias, Device device, ScalarType dtype) : base(nameof(Projection))
    {
        weight = new Parameter(torch.empty([outFeatures, inFeatures], dtype, device));
        bias = hasBias ? new Parameter(torch.empty([outFeatures], dtype, device)) : null;
        RegisterComponents();
    }

    /// <summary>The weight <c>[out, in]</c>.</summary>
    public Parameter Weight => weight;

    /// <param name="x"><c>[..., in]</c></param>
    /// <returns><c>[..., out]</c></returns>
    public override Tensor forward(Tensor x) => nn.functional.linear(x, weight, bias);
}

/// <summary>Token embedding table; parameter <c>weight</c> <c>[vocab, hidden]</c>.</summary>
public sealed class TokenEmbedding : Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    public TokenEmbedding(long vocab, long hidden, Device device, ScalarType dtype) : base(nameof(TokenEmbedding))
    {
        weight = new Parameter(torch.empty([vocab, hidden], dtype, device));
        RegisterComponents();
    }

    /// <summary>The table <c>[vocab, hidden]</c> (also the LM head when embeddings are tied).</summary>
    public Parameter Weight => weight;

    /// <param name="ids"><c>[B, T]</c> int64 token ids</param>
    /// <returns><c>[B, T, hidden]</c></returns>
    public override Tensor forward(Tensor ids)
    {
        using var flat = ids.reshape(-1);                           // [B*T]
        using var rows = weight.index_select(0, flat);              // [B*T, hidden]
        return rows.reshape(ids.shape[0], ids.shape[1], -1);        // [B, T, hidden]
    }
}

/// <summary>
/// RMSNorm as HF computes it: in float32, <c>x · rsqrt(mean(x²) + eps)</c>, cast back to the input
/// dtype, then times <c>weight</c> <c>[hidden]</c>.
/// </summary>
public sealed class RmsNorm : Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public RmsNorm(long hidden, double eps, Device device, ScalarType dtype) : base(nameof(RmsNorm))
    {
        weight = new Parameter(torch.empty([hidden], dtype, device));
        this.eps = eps;
        RegisterComponents();
    }

    /// <param name="x"><c>[..., hidden]</c></param>
    public override Tensor forward(Tensor x)
    {
        using var xf = x.to_type(ScalarType.Float32);
        using var sq = xf.square();
        using var variance = sq.mean([-1L], keepdim: true);          // [..., 1]
        using var denom = variance.add(eps).rsqrt_();
        using var normed = xf.mul(denom);
        using var back = normed.to_type(x.dtype);
        return back.mul(weight);
    }
}

/// <summary>SwiGLU MLP: <c>down_proj(silu(gate_proj(x)) · up_proj(x))</c>.</summary>
public sealed class Mlp : Module<Tensor, Tensor>
{
    private readonly Projection gate_proj, up_proj, down_proj;

    public Mlp(ModelConfig c, Device device, ScalarType dtype) : base(nameof(Mlp))
    {
        gate_proj = new Projection(c.HiddenSize, c.IntermediateSize, c.MlpBias, device, dtype);
        up_proj = new Projection(c.HiddenSize, c.IntermediateSize, c.MlpBias, device, dtype);
        down_proj = new Projection(c.IntermediateSize, c.HiddenSize, c.MlpBias, device, dtype);
        RegisterComponents();
    }

    /// <param name="x"><c>[B, T, hidden]</c></param>
    public override Tensor forward(Tensor x)
    {
        using var g = gate_proj.forward(x);                          // [B, T, inter]
        using var a = nn.functional.silu(g);
        using var u = up_proj.forward(x);                            // [B, T, inter]
        using var h = a.mul(u);
        return down_proj.forward(h);                                 // [B, T, hidden]
    }
}
