using SimKO.Host.Collective;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Training;

/// <summary>
/// The sharded optimizer state of <c>shard_optimizer=true</c> (ZeRO-2, issue 21 §3): the trained parameters,
/// in order, as one flat vector of P elements, padded to N·K with K = ⌈P/N⌉; rank r owns the elements
/// [r·K, (r+1)·K) (the last rank's slice ends in padding, never updated) and keeps for them only: the float32
/// gradient sums, AdamW's moments and, when the parameters are not their own masters (a 16-bit compute dtype,
/// or <c>optimizer_offload</c>), the float32 master weights; with offload these live in host memory. The
/// parameters themselves stay whole on every rank, in the compute dtype.
/// <para>
/// Gradients reach their owners by reduce-scatter, in buckets of at most <see cref="AdamW.BucketElements"/>
/// elements (bucket b holds, for every rank r, the elements [r·K + o, r·K + o + c) of the flat vector, so the
/// reduce-scatter hands each rank the sum of its own slice). With masters the compute-dtype gradients of each
/// micro-batch are reduce-scattered into the float32 sums right away (as DeepSpeed's ZeRO-2 does: no rank keeps
/// whole float32 sums); in float32 without offload backward accumulates in the parameters' own gradients and
/// these are reduce-scattered once per mini-batch, before clipping. After the update each rank's slice of the
/// new weights is all-gathered, in the compute dtype, into every rank's parameters.
/// </para>
/// <para>
/// A parameter without a gradient (never reached by backward) counts as a zero gradient here, where the
/// replicated optimizer skips it; in training every parameter has one after the first backward.
/// </para>
/// </summary>
public sealed class OptimizerShard
{
    /// <summary>The elements [<see cref="At"/>, <see cref="At"/> + <see cref="Length"/>) of parameter <see cref="Param"/>,
    /// at <see cref="Offset"/> in the flat range they were cut from.</summary>
    public readonly record struct Piece(int Param, long At, long Offset, long Length);

    readonly IReadOnlyList<(string Name, Tensor Param)> _params;
    readonly long[] _start;                                             // first flat element of each parameter
    readonly Device _device, _home;
    readonly ScalarType _compute;
    bool _reduced;                                                      // float32 path: gradients already reduce-scattered since the last ZeroGrad

    public ICollective Ranks { get; }
    /// <summary>Trained elements P (the flat vector without its padding).</summary>
    public long Total { get; }
    /// <summary>Elements per rank K = ⌈P/N⌉.</summary>
    public long Size { get; }
    /// <summary>Elements per rank in one collective bucket: at most <see cref="AdamW.BucketElements"/>/N.</summary>
    public long Chunk { get; }
    /// <summary>The float32 (float64 for float64 parameters) state dtype.</summary>
    public ScalarType StateType { get; }
    /// <summary>This rank's pieces of the parameters, <see cref="Piece.Offset"/> within its slice.</summary>
    public IReadOnlyList<Piece> Owned { get; }
    /// <summary>[K] master weights of this rank's slice; null when the parameters are their own masters (float32, no offload).</summary>
    public Tensor? Master { get; }
    /// <summary>[K] gradient sums of this rank's slice (over micro-batches and ranks).</summary>
    public Tensor Sum { get; }
    /// <summary>[K] AdamW's first and second moments of this rank's slice.</summary>
    public Tensor M { get; }
    public Tensor V { get; }

    public OptimizerShard(IReadOnlyList<(string Name, Tensor Param)> parameters, ICollective ranks, bool offload)
    {
        if (parameters.Count == 0) throw new ArgumentException("shard_optimizer: there are no trained parameters to shard");
        _params = parameters;
        Ranks = ranks;
        var first = parameters[0].Param;
        foreach (var (name, p) in parameters)
        {
            if (p.dtype != first.dtype || p.device_type != first.device_type || p.device_index != first.device_index)
                throw new ArgumentException($"shard_optimizer: parameter '{name}' is {p.dtype} on {p.device}, '{parameters[0].Name}' is {first.dtype} on {first.device}; the flat shards need one dtype and device");
            if (!p.is_contiguous()) throw new ArgumentException($"shard_optimizer: parameter '{name}' is not contiguous");
        }
        _compute = first.dtype;
        _device = first.device;
        StateType = AdamW.StateType(_compute);
        _home = offload ? CPU : _device;
        _start = new long[parameters.Count];
        long at = 0;
        for (int i = 0; i < parameters.Count; i++) { _start[i] = at; at += parameters[i].Param.numel(); }
        Total = at;
        int n = ranks.WorldSize;
        Size = (Total + n - 1) / n;
        Chunk = System.Math.Max(1, AdamW.BucketElements / n);
        Owned = Pieces(ranks.Rank * Size, (ranks.Rank + 1) * Size);
        using var _ = no_grad();
        Sum = zeros(Size, StateType, _home).DetachFromDisposeScope();
        M = zeros(Size, StateType, _home).DetachFromDisposeScope();
        V = zeros(Size, StateType, _home).DetachFromDisposeScope();
        if (offload || StateType != _compute)
        {
            Master = zeros(Size, StateType, _home).DetachFromDisposeScope();
            foreach (var piece in Owned) Master.narrow(0, piece.Offset, piece.Length).copy_(ParamView(piece));
        }
    }

    /// <summary>The parameters' pieces that cover the flat range [<paramref name="from"/>, <paramref name="to"/>), offsets relative to <paramref name="from"/>.</summary>
    public List<Piece> Pieces(long from, long to)
    {
        var pieces = new List<Piece>();
        for (int i = 0; i < _params.Count; i++)
        {
            long s = _start[i], e = s + _params[i].Param.numel();
            long lo = System.Math.Max(from, s), hi = System.Math.Min(to, e);
            if (lo < hi) pieces.Add(new Piece(i, lo - s, lo - from, hi - lo));
        }
        return pieces;
    }

    /// <summary>The piece's elements of its parameter, as a writable view.</summary>
    Tensor ParamView(Piece piece) => _params[piece.Param].Param.view(-1).narrow(0, piece.At, piece.Length);

    /// <summary>Bytes this rank's optimizer state takes: master weights, gradient sums and moments.</summary>
    public long StateBytes => (Master?.numel() ?? 0) * Sum.element_size() + (Sum.numel() + M.numel() + V.numel()) * Sum.element_size();

    /// <summary>With masters: reduce-scatter this micro-batch's compute-dtype gradients into the owners' float32 sums
    /// and zero them. A collective: every rank calls it as many times (<see cref="PolicyUpdate.AccumulateGradient"/>
    /// evens the counts). Without masters a no-op: backward accumulates in the parameters' float32 gradients.</summary>
    public void AccumulateGradients()
    {
        if (Master is null) return;
        ScatterGradients();
        using var _ = no_grad();
        foreach (var (_, p) in _params) p.grad?.zero_();
    }

    /// <summary>Make <see cref="Sum"/> this rank's slice of the global gradient: without masters, reduce-scatter the
    /// parameters' gradients (once per mini-batch); with masters, check that every micro-batch was accumulated.</summary>
    public void Reduce()
    {
        if (Master is null)
        {
            if (!_reduced) ScatterGradients();
            _reduced = true;
            return;
        }
        using var _ = no_grad();
        foreach (var (name, p) in _params)
            if (p.grad is { } g && g.any().item<bool>())
                throw new InvalidOperationException($"shard_optimizer: parameter '{name}' holds a gradient that was not accumulated; call AccumulateGradients after each backward (it reduce-scatters the gradients to their owners)");
    }

    /// <summary>Add the sum over ranks of the parameters' gradients to the owners' <see cref="Sum"/>, bucket by bucket.</summary>
    void ScatterGradients()
    {
        using var _ = no_grad();
        int n = Ranks.WorldSize;
        for (long o = 0; o < Size; o += Chunk)
        {
            using var scope = NewDisposeScope();
            long c = System.Math.Min(Chunk, Size - o);
            var bucket = zeros(n * c, StateType, _device);             // [N·c]: segment r is the flat range [r·K + o, r·K + o + c)
            for (int r = 0; r < n; r++)
                foreach (var piece in Pieces(r * Size + o, r * Size + o + c))
                    if (_params[piece.Param].Param.grad is { } g)
                        bucket.narrow(0, r * c + piece.Offset, piece.Length).copy_(g.reshape(-1).narrow(0, piece.At, piece.Length));
            var mine = Ranks.ReduceScatter(bucket);                    // [c]: this rank's segment summed over the ranks
            Sum.narrow(0, o, c).add_(mine.to(_home));
        }
    }

    /// <summary>Every rank's parameters take the owners' updated weights (rounded to the compute dtype), bucket by bucket.</summary>
    public void GatherWeights()
    {
        using var _ = no_grad();
        int n = Ranks.WorldSize;
        long first = Ranks.Rank * Size;
        for (long o = 0; o < Size; o += Chunk)
        {
            using var scope = NewDisposeScope();
            long c = System.Math.Min(Chunk, Size - o);
            var mine = zeros(c, _compute, _device);                    // [c]: this rank's updated elements [first + o, first + o + c)
            foreach (var piece in Pieces(first + o, first + o + c))
                mine.narrow(0, piece.Offset, piece.Length).copy_(Master is null ? ParamView(piece) : Master.narrow(0, o + piece.Offset, piece.Length));
            var all = Ranks.AllGather(mine);                           // [N·c]: segment r is the flat range [r·K + o, r·K + o + c)
            for (int r = 0; r < n; r++)
                foreach (var piece in Pieces(r * Size + o, r * Size + o + c))
                    ParamView(piece).copy_(all.narrow(0, r * c + piece.Offset, piece.Length));
        }
    }

    /// <summary>The whole parameters' values of a [K] shard buffer (<see cref="Master"/>, <see cref="M"/>, <see cref="V"/>),
    /// gathered from every rank into host tensors shaped like the parameters, named <paramref name="prefix"/> + name,
    /// on rank <paramref name="root"/>; null on the others. A collective: every rank calls it.</summary>
    public Dictionary<string, Tensor>? Gather(Tensor shard, string prefix, int root)
    {
        using var _ = no_grad();
        int n = Ranks.WorldSize;
        var full = Ranks.Rank == root
            ? _params.ToDictionary(p => prefix + p.Name, p => zeros(p.Param.shape, StateType, CPU).DetachFromDisposeScope())
            : null;
        for (long o = 0; o < Size; o += Chunk)
        {
            using var scope = NewDisposeScope();
            long c = System.Math.Min(Chunk, Size - o);
            var all = Ranks.AllGather(shard.narrow(0, o, c).contiguous()).to(CPU);   // [N·c]
            if (full is null) continue;
            for (int r = 0; r < n; r++)
                foreach (var piece in Pieces(r * Size + o, r * Size + o + c))
                    full[prefix + _params[piece.Param].Name].view(-1).narrow(0, piece.At, piece.Length).copy_(all.narrow(0, r * c + piece.Offset, piece.Length));
        }
        return full;
    }

    /// <summary>Fill this rank's slice of a [K] shard buffer from whole tensors named <paramref name="prefix"/> + parameter name.</summary>
    public void Scatter(Tensor shard, IReadOnlyDictionary<string, Tensor> whole, string prefix)
    {
        using var _ = no_grad();
        foreach (var piece in Owned)
            shard.narrow(0, piece.Offset, piece.Length).copy_(whole[prefix + _params[piece.Param].Name].reshape(-1).narrow(0, piece.At, piece.Length));
    }

    /// <summary>Zero the parameters' gradients and this rank's gradient sums.</summary>
    public void ZeroGrad()
    {
        using var _ = no_grad();
        foreach (var (_, p) in _params) p.grad?.zero_();
        Sum.zero_();
        _reduced = false;
    }
}
