using static TorchSharp.torch;

namespace SimKO.Host.Collective;

/// <summary>How the ranks' values are combined.</summary>
public enum ReduceOp { Sum, Mean }

/// <summary>
/// The ranks of a data-parallel run and the few collectives it needs (issue 21). Every tensor
/// argument is flat (1-D) and contiguous, on the device the backend serves (CPU for MPI, CUDA for
/// NCCL); the collectives are blocking: when they return, the result is in the tensor. A collective
/// that waits more than the timeout for the other ranks stops the whole job with an error naming the
/// ranks that did not arrive and <see cref="Step"/>.
/// </summary>
public interface ICollective : IDisposable
{
    /// <summary>"none", "mpi" or "nccl".</summary>
    string Backend { get; }
    int Rank { get; }
    int WorldSize { get; }
    /// <summary>The rank among the processes of this machine (picks cuda:LOCAL_RANK).</summary>
    int LocalRank { get; }
    /// <summary>The training step the next collectives belong to (named in timeout errors).</summary>
    long Step { get; set; }

    /// <summary>In place: every rank's <paramref name="flat"/> [n] becomes the sum (or mean) over ranks.</summary>
    void AllReduce(Tensor flat, ReduceOp op = ReduceOp.Sum);
    /// <summary><paramref name="flat"/> [WorldSize·k] reduced over ranks; rank r receives elements [r·k, (r+1)·k) as a new tensor [k].</summary>
    Tensor ReduceScatter(Tensor flat, ReduceOp op = ReduceOp.Sum);
    /// <summary>Every rank's <paramref name="flat"/> [k], concatenated in rank order: a new tensor [WorldSize·k].</summary>
    Tensor AllGather(Tensor flat);
    /// <summary>In place: every rank's <paramref name="flat"/> becomes rank <paramref name="root"/>'s.</summary>
    void Broadcast(Tensor flat, int root = 0);
    void Barrier();
}

/// <summary>Checks shared by the backends.</summary>
static class CollectiveChecks
{
    [System.Runtime.InteropServices.DllImport("LibTorchSharp")] static extern IntPtr THSTensor_data(IntPtr handle);

    /// <summary>The address of a contiguous tensor's first element (torch's data_ptr).</summary>
    public static IntPtr DataPtr(Tensor t) => THSTensor_data(t.Handle);

    public static void Flat(Tensor t, string op)
    {
        if (t.dim() != 1) throw new ArgumentException($"{op}: the tensor must be flat (1-D), got shape [{string.Join(", ", t.shape)}]");
        if (!t.is_contiguous()) throw new ArgumentException($"{op}: the tensor must be contiguous");
    }

    public static long Divisible(Tensor t, int worldSize, string op)
    {
        Flat(t, op);
        if (t.shape[0] % worldSize != 0)
            throw new ArgumentException($"{op}: {t.shape[0]} elements do not split into {worldSize} equal shards; pad the buffer to a multiple of the world size");
        return t.shape[0] / worldSize;
    }
}
