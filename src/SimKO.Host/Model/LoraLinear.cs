using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SimKO.Host.Model;

/// <summary>
/// How adapters are attached (PEFT's LoraConfig, issue 22): rank r, α, the projections that get
/// one, dropout on the adapter's input, and rsLoRA scaling.
/// </summary>
/// <param name="Rank">r (≥ 1)</param>
/// <param name="Alpha">α: the update is scaled by α / r (α / √r with <paramref name="UseRslora"/>)</param>
/// <param name="TargetModules">projection names (q_proj … down_proj) that get an adapter</param>
/// <param name="Dropout">dropout on the adapter's input x in training (0 = none)</param>
/// <param name="UseRslora">rank-stabilised scaling α / √r (Kalajdzievski 2023)</param>
public sealed record LoraSettings(int Rank, double Alpha, IReadOnlyList<string> TargetModules, double Dropout = 0, bool UseRslora = false)
{
    /// <summary>Every linear projection of a decoder layer (PEFT's names), the default targets.</summary>
    public static readonly IReadOnlyList<string> AllProjections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>The factor of B(A x): α / r, or α / √r with rsLoRA (PEFT's LoraLayer.update_layer).</summary>
    public double Scaling => UseRslora ? Alpha / System.Math.Sqrt(Rank) : Alpha / Rank;
}

/// <summary>
/// A linear layer y = W x + b that may carry a LoRA adapter: y = W x + b + s · B(A dropout(x))
/// (Hu et al. 2021, eq. 3; PEFT's parameterisation), s = <see cref="LoraSettings.Scaling"/>.
/// Its registered parameters are exactly Linear's (<c>weight</c> [out, in], <c>bias</c> [out]) so
/// checkpoint names are unchanged; the adapter's A [r, in] and B [out, r] are held apart (not
/// registered) and listed by <see cref="CausalLM.LoraParameters"/> under PEFT's names.
/// </summary>
public sealed class LoraLinear : Module<Tensor, Tensor>
{
    public readonly Parameter weight;
    public readonly Parameter? bias;
    // not registered with the module (a plain holder type), so named_parameters() stays the base model's
    readonly AdapterHolder _adapter = new();

    sealed class AdapterHolder
    {
        public Parameter? A, B;
        public double Scaling, Dropout;
    }

    public LoraLinear(long inFeatures, long outFeatures, bool hasBias, Device? device = null, ScalarType? dtype = null) : base(nameof(LoraLinear))
    {
        // Linear's own initialisation (kaiming-uniform weight, uniform bias); models are re-initialised or loaded anyway
        using var init = Linear(inFeatures, outFeatures, hasBias, device, dtype);
        weight = new Parameter(init.weight!.detach().clone());
        if (hasBias) bias = new Parameter(init.bias!.detach().clone());
        RegisterComponents();
    }

    public long InFeatures => weight.shape[1];
    public long OutFeatures => weight.shape[0];

    /// <summary>Adapter A [r, in] (null without an adapter).</summary>
    public Parameter? LoraA => _adapter.A;
    /// <summary>Adapter B [out, r].</summary>
    public Parameter? LoraB => _adapter.B;
    public double Scaling => _adapter.Scaling;

    /// <summary>Whether the adapter takes part in forward (off: the base layer; the KL reference).</summary>
    public bool AdapterEnabled { get; set; } = true;

    /// <summary>Attach an adapter as PEFT initialises one (LoraLayer.reset_lora_parameters with
    /// init_lora_weights=True): A ~ kaiming_uniform(a = √5), i.e. U(−1/√in, 1/√in), B = 0, so the
    /// layer's output is unchanged. A and B are created in the weight's dtype and device.</summary>
    public void AttachAdapter(int rank, double scaling, double dropout, Generator gen)
    {
        DetachAdapter();
        double bound = 1.0 / System.Math.Sqrt(InFeatures);
        using var _ = no_grad();
        var a = (rand([rank, InFeatures], ScalarType.Float32, weight.device, generator: gen) * (2 * bound) - bound).to(weight.dtype);
        _adapter.A = new Parameter(a.DetachFromDisposeScope());
        _adapter.B = new Parameter(zeros([OutFeatures, rank], weight.dtype, weight.device).DetachFromDisposeScope());
        _adapter.Scaling = scaling;
        _adapter.Dropout = dropout;
    }

    public void DetachAdapter()
    {
        _adapter.A?.Dispose(); _adapter.B?.Dispose();
        _adapter.A = _adapter.B = null;
    }

    /// <param name="x">[..., in]</param>
    /// <returns>[..., out]</returns>
    public override Tensor forward(Tensor x) => Forward(x, DecodeLinear.Path.Linear);

    /// <param name="x">[..., in]</param>
    /// <param name="path">the forward's product (<see cref="DecodeLinear.Choose"/>: a faster one while sampling on the CPU)</param>
    /// <returns>[..., out]</returns>
    public Tensor Forward(Tensor x, DecodeLinear.Path path)
    {
        var y = DecodeLinear.Forward(x, weight, bias, path);                              // (..., out)
        if (_adapter.A is not { } a || _adapter.B is not { } b || !AdapterEnabled) return y;
        var input = _adapter.Dropout > 0 && training ? functional.dropout(x, _adapter.Dropout, true) : x;
        // y += s · B(A x), added in place and the temporaries freed at once: written as y + B(A x) · s, the layer's
        // dispose scope kept three more (..., out) tensors per projection alive until the layer ended, which made a
        // LoRA update's peak higher than full fine-tuning's. Autograd keeps what backward needs (A x for ∂B, x for ∂A):
        // neither linear's backward reads its output, and the in-place add reads neither operand.
        using var ax = functional.linear(input, a);                                       // (..., r)
        using var delta = functional.linear(ax, b);                                       // (..., out)
        return y.add_(delta, _adapter.Scaling);
    }

    /// <summary>W + s · B A [out, in] in float32 (PEFT's merge_and_unload), from this layer's tensors.</summary>
    public Tensor MergedWeight()
    {
        using var _ = no_grad();
        var w = weight.detach().to(ScalarType.Float32);
        if (_adapter.A is not { } a || _adapter.B is not { } b) return w.clone();
        return w + b.detach().to(ScalarType.Float32).matmul(a.detach().to(ScalarType.Float32)) * _adapter.Scaling;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) DetachAdapter();
        base.Dispose(disposing);
    }
}
