using SimKO.Host.Collective;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Training;

/// <summary>
/// AdamW (Loshchilov and Hutter) with decoupled weight decay, written out so that its whole state
/// is a set of named tensors (saved with the checkpoint, restored bit for bit on resume).
/// <para>
/// Mixed precision (SPEC §8, issue 12): whatever the parameters' (compute) dtype, the update is done
/// on float32 master weights with float32 moments, from float32 gradient sums. With float32
/// parameters on their own device and no offload, the parameters are the master weights and their
/// <c>.grad</c> the sums (nothing is copied). Otherwise each parameter has a float32 master copy and
/// a float32 gradient sum: <see cref="AccumulateGradients"/> adds the compute-dtype gradients of
/// each micro-batch into the sums (and zeroes them), <see cref="Step"/> updates the masters and
/// copies them back into the parameters (rounded to the compute dtype).
/// </para>
/// <para>
/// Offload (<c>optimizer_offload</c>): masters, sums and moments live in host memory and the update
/// runs there, as verl's optimizer offload does; only the compute-dtype parameters and their
/// gradients stay on the device.
/// </para>
/// <para>
/// Sharded (<c>shard_optimizer</c>, issue 21 §3): given the ranks to shard over, masters, sums and moments
/// are those of this rank's slice of the flat parameter vector (<see cref="OptimizerShard"/>); the update is
/// the same per-element formula (<see cref="Update"/>), applied to the slice's pieces of each parameter.
/// </para>
/// </summary>
public sealed class AdamW
{
    readonly IReadOnlyList<(string Name, Tensor Param)> _params;
    readonly Dictionary<string, Tensor> _m = new(), _v = new(), _master = new(), _sum = new();
    readonly OptimizerShard? _shard;

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    /// <summary>Master weights, gradient sums and moments in host memory.</summary>
    public bool Offload { get; }
    /// <summary>Number of updates taken so far (bias correction uses it).</summary>
    public long Steps { get; private set; }

    /// <param name="shardOver">the ranks to shard the optimizer state over (<c>shard_optimizer</c>); null: replicated</param>
    public AdamW(IReadOnlyList<(string Name, Tensor Param)> parameters, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01, bool offload = false,
        ICollective? shardOver = null)
    {
        _params = parameters;
        Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay; Offload = offload;
        if (shardOver is not null)
        {
            _shard = new OptimizerShard(parameters, shardOver, offload);
            return;
        }
        using var _ = no_grad();
        foreach (var (name, p) in parameters)
        {
            var home = offload ? CPU : p.device;
            var type = StateType(p.dtype);                              // float32, or float64 for float64 parameters
            if (offload || type != p.dtype)
            {
                _master[name] = p.detach().to(type, home, copy: true).DetachFromDisposeScope();
                _sum[name] = zeros(p.shape, type, home).DetachFromDisposeScope();
            }
            _m[name] = zeros(p.shape, type, home).DetachFromDisposeScope();
            _v[name] = zeros(p.shape, type, home).DetachFromDisposeScope();
        }
    }

    /// <summary>The dtype of master weights, moments and gradient sums for parameters of <paramref name="dtype"/>:
    /// float32 for the 16-bit types, the parameters' own otherwise (float32, float64).</summary>
    public static ScalarType StateType(ScalarType dtype) =>
        dtype is ScalarType.BFloat16 or ScalarType.Float16 ? ScalarType.Float32 : dtype;

    /// <summary>Whether parameters keep separate float32 masters and gradient sums.</summary>
    public bool HasMasters => _shard is not null ? _shard.Master is not null : _master.Count > 0;

    /// <summary>The sharded state (<c>shard_optimizer</c>), or null when the optimizer is replicated.</summary>
    public OptimizerShard? Shard => _shard;

    /// <summary>Bytes of optimizer state this process holds: float32 masters, gradient sums (when separate from the
    /// parameters' gradients) and moments.</summary>
    public long StateBytes => _shard?.StateBytes
        ?? new[] { _master, _sum, _m, _v }.Sum(d => d.Values.Sum(t => t.numel() * t.element_size()));

    /// <summary>Add the parameters' gradients of one micro-batch into the float32 sums and zero them
    /// (no-op when the parameters are their own masters: their <c>.grad</c> accumulates in float32).</summary>
    public void AccumulateGradients()
    {
        if (_shard is not null) { _shard.AccumulateGradients(); return; }
        if (!HasMasters) return;
        using var _ = no_grad();
        foreach (var (name, p) in _params)
        {
            var g = p.grad;
            if (g is null) continue;
            using var g32 = g.to(_sum[name].dtype, _sum[name].device);
            _sum[name].add_(g32);
            g.zero_();
        }
    }

    /// <summary>The float32 gradient of each parameter for the update: its sum, or its <c>.grad</c>.</summary>
    IEnumerable<(string Name, Tensor Grad)> Gradients() =>
        _params.Select(p => (p.Name, HasMasters ? _sum[p.Name] : p.Param.grad)).Where(x => x.Item2 is not null)!;

    /// <summary>The ranks whose gradients are summed before clipping (data parallelism, issue 21); null: one process.</summary>
    public ICollective? Collective { get; set; }

    /// <summary>Elements per all-reduce bucket (64 MB of float32).</summary>
    public const long BucketElements = 16L << 20;

    /// <summary>Sum every parameter's float32 gradient (sum) over the ranks, in flat buckets of up to
    /// <see cref="BucketElements"/>: once per mini-batch, after accumulation and before clipping, so the
    /// clip norm is the global one. Each rank's loss is normalised by the global mini-batch's counts,
    /// so the sum is the one-process gradient.</summary>
    public void AllReduceGradients()
    {
        if (_shard is not null || Collective is not { WorldSize: > 1 } c) return;      // sharded: reduce-scattered instead
        AccumulateGradients();
        using var _ = no_grad();
        foreach (var group in Gradients().GroupBy(g => (g.Grad.dtype, g.Grad.device_type)))
        {
            var pending = new List<Tensor>();
            long size = 0;
            void Flush()
            {
                if (pending.Count == 0) return;
                using var scope = NewDisposeScope();
                var bucket = cat(pending.Select(t => t.reshape(-1)).ToList(), 0);   // [Σ numel] flat fp32
                c.AllReduce(bucket);
                long at = 0;
                foreach (var t in pending) { t.copy_(bucket.narrow(0, at, t.numel()).view(t.shape)); at += t.numel(); }
                pending.Clear(); size = 0;
            }
            foreach (var (_, g) in group)
            {
                if (size + g.numel() > BucketElements) Flush();
                pending.Add(g); size += g.numel();
            }
            Flush();
        }
    }

    /// <summary>Clip the global gradient norm to <paramref name="maxNorm"/> (as torch's
    /// clip_grad_norm_: scale by maxNorm / (norm + 1e-6) when below 1); returns the norm before.</summary>
    public double ClipGradients(double maxNorm)
    {
        using var _ = no_grad();
        double sq;
        if (_shard is not null)
        {
            // this rank's slice of the global gradient; the squared norms of the ranks' slices summed over the ranks
            _shard.Reduce();
            using var total = tensor(new[] { SquaredNorm(_shard.Owned.Select(p => _shard.Sum.narrow(0, p.Offset, p.Length))) }, ScalarType.Float64);
            _shard.Ranks.AllReduce(total);
            sq = total.item<double>();
        }
        else
        {
            AccumulateGradients();                                      // gradients not yet added to the sums
            AllReduceGradients();
            sq = SquaredNorm(Gradients().Select(g => g.Grad));
        }
        double norm = System.Math.Sqrt(sq);
        double coef = maxNorm / (norm + 1e-6);
        if (coef < 1)
        {
            if (_shard is not null) _shard.Sum.mul_(coef);
            else foreach (var (_, g) in Gradients()) g.mul_(coef);
        }
        return norm;
    }

    /// <summary>Σ‖g‖² over gradient pieces, each piece's g·g taken in its dtype (a dot product: no gradient-sized
    /// temporary, which for a 7B model's embedding gradient would be 2 GB) and added in float64 on the device, in
    /// order, read back once (a parameter's pieces are whole parameters with one rank, so a one-rank shard gives the
    /// replicated norm exactly).</summary>
    static double SquaredNorm(IEnumerable<Tensor> pieces)
    {
        using var scope = NewDisposeScope();
        Tensor? total = null;
        foreach (var g in pieces)
        {
            var flat = g.reshape(-1);
            var sq = flat.dot(flat).to(ScalarType.Float64);
            total = total is null ? sq : total.add_(sq.to(total.device));
        }
        return total?.item<double>() ?? 0;
    }

    /// <summary>One update with learning rate <paramref name="lr"/> from the gradients (sums).</summary>
    public void Step(double lr)
    {
        if (_shard is null) AccumulateGradients();                      // gradients not yet added to the sums
        else _shard.Reduce();                                           // sharded: this rank's slice of the global gradient
        using var _ = no_grad();
        Steps++;
        double bc1 = 1 - System.Math.Pow(Beta1, Steps), bc2 = 1 - System.Math.Pow(Beta2, Steps);
        if (_shard is { } s)
        {
            // the owned pieces of each parameter: with one rank, whole parameters, as below
            foreach (var piece in s.Owned)
            {
                Tensor Slice(Tensor t) => t.narrow(0, piece.Offset, piece.Length);
                var w = s.Master is { } master ? Slice(master) : _params[piece.Param].Param.view(-1).narrow(0, piece.At, piece.Length);
                Update(w, Slice(s.Sum), Slice(s.M), Slice(s.V), lr, bc1, bc2);
            }
            s.GatherWeights();                                          // every rank's parameters take the owners' new weights
            return;
        }
        foreach (var (name, p) in _params)
        {
            var g = HasMasters ? _sum[name] : p.grad;
            if (g is null) continue;
            var w = HasMasters ? _master[name] : p;
            Update(w, g, _m[name], _v[name], lr, bc1, bc2);
            if (HasMasters) p.copy_(w);                                 // rounded to the compute dtype, moved to its device
        }
    }

    /// <summary>AdamW's per-element update of weights <paramref name="w"/> from gradient <paramref name="g"/> and moments
    /// <paramref name="m"/>, <paramref name="v"/> (all the same shape, updated in place), with bias corrections
    /// <paramref name="bc1"/> = 1 − β1^t and <paramref name="bc2"/> = 1 − β2^t: the one formula of the replicated and
    /// the sharded optimizer.</summary>
    void Update(Tensor w, Tensor g, Tensor m, Tensor v, double lr, double bc1, double bc2)
    {
        m.mul_(Beta1).add_(g, alpha: 1 - Beta1);
        v.mul_(Beta2).addcmul_(g, g, value: 1 - Beta2);
        if (WeightDecay != 0) w.mul_(1 - lr * WeightDecay);
        using var denom = v.sqrt().div_(System.Math.Sqrt(bc2)).add_(Eps);
        w.addcdiv_(m, denom, value: -lr / bc1);
    }

    public void ZeroGrad()
    {
        if (_shard is not null) { _shard.ZeroGrad(); return; }
        foreach (var (_, p) in _params) p.grad?.zero_();
        foreach (var s in _sum.Values) s.zero_();
    }

    /// <summary>The trained parameters by name (compute dtype; whole on every rank, also when the optimizer is sharded).</summary>
    public Dictionary<string, Tensor> Parameters() => _params.ToDictionary(p => p.Name, p => p.Param);

    /// <summary>The float32 master weights by parameter name (the parameters themselves when they are the masters).
    /// A sharded optimizer with masters holds only its slice: <see cref="MasterWeightsOn"/> gathers them.</summary>
    public Dictionary<string, Tensor> MasterWeights()
    {
        if (_shard is { Master: not null })
            throw new InvalidOperationException("shard_optimizer: each rank holds the master weights of its slice only; gather them with MasterWeightsOn (a collective)");
        return _params.ToDictionary(p => p.Name, p => HasMasters ? _master[p.Name] : p.Param);
    }

    /// <summary>The whole float32 master weights on rank <paramref name="root"/> (null on the other ranks of a sharded
    /// optimizer, which gathers them from the owners: a collective every rank calls); replicated: <see cref="MasterWeights"/>.</summary>
    public Dictionary<string, Tensor>? MasterWeightsOn(int root = 0) =>
        _shard is { Master: { } master } s ? s.Gather(master, "", root) : MasterWeights();

    /// <summary>The whole state (<see cref="State"/>'s names and shapes, whatever the sharding) on rank <paramref name="root"/>;
    /// null on the other ranks of a sharded optimizer, which gathers the moments from the owners (a collective every rank calls).</summary>
    public Dictionary<string, Tensor>? StateOn(int root = 0)
    {
        if (_shard is null) return State();
        var m = _shard.Gather(_shard.M, "m.", root);
        var v = _shard.Gather(_shard.V, "v.", root);
        if (m is null || v is null) return null;
        var state = new Dictionary<string, Tensor> { ["steps"] = tensor(new[] { Steps }) };
        foreach (var (name, _) in _params) { state["m." + name] = m["m." + name]; state["v." + name] = v["v." + name]; }
        return state;
    }

    /// <summary>Set master weights (and the parameters, rounded) from named float32 tensors, e.g. a checkpoint.</summary>
    public void LoadMasterWeights(IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        var problems = new List<string>();
        foreach (var (name, p) in _params)
        {
            if (!weights.TryGetValue(name, out var t)) problems.Add($"missing tensor '{name}'");
            else if (!t.shape.SequenceEqual(p.shape)) problems.Add($"tensor '{name}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", p.shape)}]");
        }
        if (problems.Count > 0) throw new InvalidDataException($"{source}: {string.Join("; ", problems)}");
        using var _ = no_grad();
        foreach (var (name, p) in _params)
        {
            if (HasMasters && _shard is null) _master[name].copy_(weights[name]);
            p.copy_(weights[name]);
        }
        if (_shard is { Master: { } master } s) s.Scatter(master, weights, "");   // this rank's slice
    }

    /// <summary>The state as named tensors: "m.&lt;param&gt;", "v.&lt;param&gt;" and "steps".</summary>
    public Dictionary<string, Tensor> State()
    {
        if (_shard is not null)
            throw new InvalidOperationException("shard_optimizer: each rank holds the moments of its slice only; gather them with StateOn (a collective)");
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
        if (_shard is { } s)
        {
            s.Scatter(s.M, state, "m.");                                // this rank's slice of the whole moments
            s.Scatter(s.V, state, "v.");
            return;
        }
        foreach (var (name, p) in _params)
        {
            _m[name].copy_(state["m." + name]);
            _v[name].copy_(state["v." + name]);
        }
    }
}
