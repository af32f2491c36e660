using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Training;

/// <summary>
/// AdamW (Loshchilov and Hutter) with decoupled weight decay, written out so that its whole state
/// is a set of named tensors (saved with the checkpoint, restored bit for bit on resume).
/// </summary>
public sealed class AdamW
{
    readonly IReadOnlyList<(string Name, Tensor Param)> _params;
    readonly Dictionary<string, Tensor> _m = new(), _v = new();

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    /// <summary>Number of updates taken so far (bias correction uses it).</summary>
    public long Steps { get; private set; }

    public AdamW(IReadOnlyList<(string Name, Tensor Param)> parameters, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01)
    {
        _params = parameters;
        Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay;
        foreach (var (name, p) in parameters)
        {
            _m[name] = zeros_like(p).DetachFromDisposeScope();
            _v[name] = zeros_like(p).DetachFromDisposeScope();
        }
    }

    /// <summary>One update with learning rate <paramref name="lr"/> from the parameters' gradients.</summary>
    public void Step(double lr)
    {
        using var _ = no_grad();
        Steps++;
        double bc1 = 1 - System.Math.Pow(Beta1, Steps), bc2 = 1 - System.Math.Pow(Beta2, Steps);
        foreach (var (name, p) in _params)
        {
            var g = p.grad;
            if (g is null) continue;
            var m = _m[name]; var v = _v[name];
            m.mul_(Beta1).add_(g, alpha: 1 - Beta1);
            v.mul_(Beta2).addcmul_(g, g, value: 1 - Beta2);
            if (WeightDecay != 0) p.mul_(1 - lr * WeightDecay);
            using var denom = v.sqrt().div_(System.Math.Sqrt(bc2)).add_(Eps);
            p.addcdiv_(m, denom, value: -lr / bc1);
        }
    }

    public void ZeroGrad()
    {
        foreach (var (_, p) in _params) p.grad?.zero_();
    }

    /// <summary>The state as named tensors: "m.&lt;param&gt;", "v.&lt;param&gt;" and "steps".</summary>
    public Dictionary<string, Tensor> State()
    {
        var state = new Dictionary<string, Tensor> { ["steps"] = tensor(new[] { Steps }) };
        foreach (var (name, _) in _params) { state["m." + name] = _m[name]; state["v." + name] = _v[name]; }
        return state;
    }

    /// <summary>Restore a state written by <see cref="State"/>; every missing or mis-shaped tensor is named.</summary>
    public void Load(IReadOnlyDictionary<string, Tensor> state, string source)
    {
        var problems = new List<string>();
        if (!state.TryGetValue("steps", out var steps)) problems.Add("missing tensor 'steps'");
        foreach (var (name, p) in _params)
            foreach (var key in new[] { "m." + name, "v." + name })
            {
                if (!state.TryGetValue(key, out var t)) problems.Add($"missing tensor '{key}'");
                else if (!t.shape.SequenceEqual(p.shape))
                    problems.Add($"tensor '{key}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", p.shape)}]");
            }
        if (problems.Count > 0) throw new InvalidDataException($"{source}: optimizer state does not fit the model: {string.Join("; ", problems)}");
        using var _ = no_grad();
        Steps = steps!.to(ScalarType.Int64).item<long>();
        foreach (var (name, p) in _params)
        {
            _m[name].copy_(state["m." + name]);
            _v[name].copy_(state["v." + name]);
        }
    }
}
