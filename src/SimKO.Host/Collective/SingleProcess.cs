using static TorchSharp.torch;

namespace SimKO.Host.Collective;

/// <summary>The collective of a one-process run: every operation is the identity.</summary>
public sealed class SingleProcess : ICollective
{
    public string Backend => "none";
    public int Rank => 0;
    public int WorldSize => 1;
    public int LocalRank => 0;
    public long Step { get; set; }

    public void AllReduce(Tensor flat, ReduceOp op = ReduceOp.Sum) => CollectiveChecks.Flat(flat, "all-reduce");
    public Tensor ReduceScatter(Tensor flat, ReduceOp op = ReduceOp.Sum) { CollectiveChecks.Flat(flat, "reduce-scatter"); return flat.clone(); }
    public Tensor AllGather(Tensor flat) { CollectiveChecks.Flat(flat, "all-gather"); return flat.clone(); }
    public void Broadcast(Tensor flat, int root = 0)
    {
        if (root != 0) throw new ArgumentException($"broadcast: root {root} does not exist in a one-process run");
        CollectiveChecks.Flat(flat, "broadcast");
    }
    public void Barrier() { }
    public void Dispose() { }
}
