using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Collective;

/// <summary>
/// Open MPI 4 (Debian's <c>libmpi.so.40</c>) by P/Invoke: handles are the addresses of the exported
/// predefined objects (<c>ompi_mpi_comm_world</c>, <c>ompi_mpi_float</c>, <c>ompi_mpi_op_sum</c>),
/// <c>MPI_IN_PLACE</c> is <c>(void*)1</c>, buffers are the <c>data_ptr</c> of contiguous CPU tensors
/// (CUDA tensors are staged through host memory). Every collective is the non-blocking <c>MPI_I*</c>
/// form polled with <c>MPI_Test</c> against a deadline; past it the waiting rank asks every other rank
/// where it is, prints which ranks did not answer (with the step), and aborts the job (MPI_Abort).
/// </summary>
public sealed class MpiBackend : ICollective
{
    const string Lib = "libmpi.so.40";
    const int ThreadSerialized = 2, WhereTag = 0x5157;
    static readonly IntPtr InPlace = 1;

    [DllImport(Lib)] static extern int MPI_Initialized(out int flag);
    [DllImport(Lib)] static extern int MPI_Finalized(out int flag);
    [DllImport(Lib)] static extern int MPI_Init_thread(IntPtr argc, IntPtr argv, int required, out int provided);
    [DllImport(Lib)] static extern int MPI_Finalize();
    [DllImport(Lib)] static extern int MPI_Comm_rank(IntPtr comm, out int rank);
    [DllImport(Lib)] static extern int MPI_Comm_size(IntPtr comm, out int size);
    [DllImport(Lib)] static extern int MPI_Abort(IntPtr comm, int code);
    [DllImport(Lib)] static extern int MPI_Test(ref IntPtr request, out int flag, IntPtr status);
    [DllImport(Lib)] static extern int MPI_Cancel(ref IntPtr request);
    [DllImport(Lib)] static extern int MPI_Iallreduce(IntPtr send, IntPtr recv, int count, IntPtr type, IntPtr op, IntPtr comm, out IntPtr request);
    [DllImport(Lib)] static extern int MPI_Ireduce_scatter_block(IntPtr send, IntPtr recv, int count, IntPtr type, IntPtr op, IntPtr comm, out IntPtr request);
    [DllImport(Lib)] static extern int MPI_Iallgather(IntPtr send, int sendCount, IntPtr sendType, IntPtr recv, int recvCount, IntPtr recvType, IntPtr comm, out IntPtr request);
    [DllImport(Lib)] static extern int MPI_Ibcast(IntPtr buffer, int count, IntPtr type, int root, IntPtr comm, out IntPtr request);
    [DllImport(Lib)] static extern int MPI_Ibarrier(IntPtr comm, out IntPtr request);
    [DllImport(Lib)] static extern int MPI_Isend(IntPtr buffer, int count, IntPtr type, int dest, int tag, IntPtr comm, out IntPtr request);
    [DllImport(Lib)] static extern int MPI_Irecv(IntPtr buffer, int count, IntPtr type, int source, int tag, IntPtr comm, out IntPtr request);

    static MpiBackend? _open;
    static readonly object Gate = new();

    readonly IntPtr _world, _byte, _float, _double, _int64, _int32, _sum;
    readonly TimeSpan _timeout;
    long _sequence;

    public string Backend => "mpi";
    public int Rank { get; }
    public int WorldSize { get; }
    public int LocalRank { get; }
    public long Step { get; set; }
    /// <summary>Seconds a collective waits for the others before the job is stopped.</summary>
    public double TimeoutSeconds => _timeout.TotalSeconds;

    /// <summary>The process's MPI (initialised once; MPI cannot be initialised twice in a process).</summary>
    public static MpiBackend Open(double timeoutSeconds)
    {
        lock (Gate) return _open ??= new MpiBackend(timeoutSeconds);
    }

    MpiBackend(double timeoutSeconds)
    {
        IntPtr lib;
        try { lib = NativeLibrary.Load(Lib); }
        catch (DllNotFoundException e)
        {
            throw new InvalidOperationException($"collective=mpi needs Open MPI's {Lib}, which cannot be loaded ({e.Message}). " +
                "Install it with: apt-get install -y openmpi-bin (Debian/Ubuntu), and launch with mpirun -np N simko train …", e);
        }
        IntPtr Handle(string name) => NativeLibrary.TryGetExport(lib, name, out var p) ? p
            : throw new InvalidOperationException($"{Lib} does not export '{name}': collective=mpi needs Open MPI (4.x); this MPI is another implementation");
        _world = Handle("ompi_mpi_comm_world");
        _byte = Handle("ompi_mpi_byte"); _float = Handle("ompi_mpi_float"); _double = Handle("ompi_mpi_double");
        _int64 = Handle("ompi_mpi_int64_t"); _int32 = Handle("ompi_mpi_int"); _sum = Handle("ompi_mpi_op_sum");
        _timeout = TimeSpan.FromSeconds(timeoutSeconds);
        Check(MPI_Initialized(out var done), "MPI_Initialized");
        if (done == 0) Check(MPI_Init_thread(IntPtr.Zero, IntPtr.Zero, ThreadSerialized, out _), "MPI_Init_thread");
        Check(MPI_Comm_rank(_world, out var rank), "MPI_Comm_rank");
        Check(MPI_Comm_size(_world, out var size), "MPI_Comm_size");
        Rank = rank; WorldSize = size;
        LocalRank = LaunchEnvironment.LocalRank() ?? 0;
    }

    static void Check(int code, string call)
    {
        if (code != 0) throw new InvalidOperationException($"{call} failed with MPI error code {code}");
    }

    IntPtr TypeOf(ScalarType t, string op) => t switch
    {
        ScalarType.Float32 => _float,
        ScalarType.Float64 => _double,
        ScalarType.Int64 => _int64,
        ScalarType.Int32 => _int32,
        _ => throw new ArgumentException($"{op}: MPI reduces float32, float64, int64 or int32 tensors, got {t}; reduce in a float32 bucket"),
    };

    /// <summary>Runs <paramref name="body"/> on a host copy of a CUDA tensor (copied back when <paramref name="writeBack"/>).</summary>
    static T OnHost<T>(Tensor t, bool writeBack, Func<Tensor, T> body)
    {
        if (t.device_type == DeviceType.CPU) return body(t);
        using var host = t.to(CPU);
        var result = body(host);
        if (writeBack) using (no_grad()) t.copy_(host);
        return result;
    }

    static int Count(long n, string op) => n <= int.MaxValue ? (int)n
        : throw new ArgumentException($"{op}: {n} elements exceed MPI's int count; all-reduce in buckets below 2^31 elements");

    public void AllReduce(Tensor flat, ReduceOp op = ReduceOp.Sum)
    {
        CollectiveChecks.Flat(flat, "all-reduce");
        var type = TypeOf(flat.dtype, "all-reduce");
        OnHost(flat, true, t =>
        {
            Check(MPI_Iallreduce(InPlace, CollectiveChecks.DataPtr(t), Count(t.numel(), "all-reduce"), type, _sum, _world, out var req), "MPI_Iallreduce");
            Wait(ref req, "all-reduce");
            return 0;
        });
        if (op == ReduceOp.Mean) using (no_grad()) flat.div_(WorldSize);
    }

    public Tensor ReduceScatter(Tensor flat, ReduceOp op = ReduceOp.Sum)
    {
        long k = CollectiveChecks.Divisible(flat, WorldSize, "reduce-scatter");
        var type = TypeOf(flat.dtype, "reduce-scatter");
        var shard = OnHost(flat, false, t =>
        {
            var output = empty(k, t.dtype);
            Check(MPI_Ireduce_scatter_block(CollectiveChecks.DataPtr(t), CollectiveChecks.DataPtr(output), Count(k, "reduce-scatter"), type, _sum, _world, out var req), "MPI_Ireduce_scatter_block");
            Wait(ref req, "reduce-scatter");
            return output;
        });
        if (op == ReduceOp.Mean) using (no_grad()) shard.div_(WorldSize);
        return shard.to(flat.device);
    }

    public Tensor AllGather(Tensor flat)
    {
        CollectiveChecks.Flat(flat, "all-gather");
        var gathered = OnHost(flat, false, t =>
        {
            var output = empty(t.numel() * WorldSize, t.dtype);
            int bytes = Count(t.numel() * t.element_size(), "all-gather");
            Check(MPI_Iallgather(CollectiveChecks.DataPtr(t), bytes, _byte, CollectiveChecks.DataPtr(output), bytes, _byte, _world, out var req), "MPI_Iallgather");
            Wait(ref req, "all-gather");
            return output;
        });
        return gathered.to(flat.device);
    }

    public void Broadcast(Tensor flat, int root = 0)
    {
        CollectiveChecks.Flat(flat, "broadcast");
        if (root < 0 || root >= WorldSize) throw new ArgumentException($"broadcast: root {root} is not a rank of {WorldSize}");
        OnHost(flat, true, t =>
        {
            Check(MPI_Ibcast(CollectiveChecks.DataPtr(t), Count(t.numel() * t.element_size(), "broadcast"), _byte, root, _world, out var req), "MPI_Ibcast");
            Wait(ref req, "broadcast");
            return 0;
        });
    }

    /// <summary>Broadcast raw bytes (NCCL's unique id).</summary>
    internal void Broadcast(byte[] data, int root)
    {
        var h = GCHandle.Alloc(data, GCHandleType.Pinned);
        try
        {
            Check(MPI_Ibcast(h.AddrOfPinnedObject(), data.Length, _byte, root, _world, out var req), "MPI_Ibcast");
            Wait(ref req, "broadcast");
        }
        finally { h.Free(); }
    }

    public void Barrier()
    {
        Check(MPI_Ibarrier(_world, out var req), "MPI_Ibarrier");
        Wait(ref req, "barrier");
    }

    /// <summary>Poll until the request completes; past the deadline, name the missing ranks and abort the job.</summary>
    void Wait(ref IntPtr request, string op)
    {
        long seq = ++_sequence;
        var clock = Stopwatch.StartNew();
        for (int spins = 0; ; spins++)
        {
            Check(MPI_Test(ref request, out var flag, IntPtr.Zero), "MPI_Test");
            if (flag != 0) return;
            var waited = clock.Elapsed;
            if (waited > _timeout) { Stop(op, seq); return; }
            // non-blocking collectives progress only inside MPI_Test: poll tightly (yielding the core to
            // other runnable threads, as Open MPI's own blocking calls do when oversubscribed), and sleep
            // between polls only after a long wait, when a rank is probably straggling or gone
            if (waited.TotalSeconds < 10) Thread.Yield();
            else Thread.Sleep(1);
        }
    }

    /// <summary>Ask every other rank which collective it is in (they answer when their own wait runs out,
    /// or never when they are dead or hung), print the verdict and abort the job.</summary>
    void Stop(string op, long seq)
    {
        var message = Where(op, seq);
        Console.Out.Flush();
        Console.Error.WriteLine(message);
        Console.Error.Flush();
        MPI_Abort(_world, 70);
        Environment.Exit(70);
    }

    string Where(string op, long seq)
    {
        int n = WorldSize;
        var mine = Marshal.AllocHGlobal(16);
        var theirs = Marshal.AllocHGlobal(16 * n);
        try
        {
            Marshal.WriteInt64(mine, 0, seq); Marshal.WriteInt64(mine, 8, Step);
            var sends = new IntPtr[n]; var recvs = new IntPtr[n]; var answered = new bool[n];
            for (int r = 0; r < n; r++)
            {
                if (r == Rank) continue;
                MPI_Isend(mine, 2, _int64, r, WhereTag, _world, out sends[r]);
                MPI_Irecv(theirs + 16 * r, 2, _int64, r, WhereTag, _world, out recvs[r]);
            }
            var grace = Stopwatch.StartNew();
            var limit = TimeSpan.FromSeconds(System.Math.Clamp(_timeout.TotalSeconds, 1, 10));
            while (grace.Elapsed < limit && Enumerable.Range(0, n).Any(r => r != Rank && !answered[r]))
            {
                for (int r = 0; r < n; r++)
                    if (r != Rank && !answered[r] && MPI_Test(ref recvs[r], out var f, IntPtr.Zero) == 0 && f != 0) answered[r] = true;
                Thread.Sleep(5);
            }
            var missing = Enumerable.Range(0, n).Where(r => r != Rank && !answered[r]).ToList();
            var elsewhere = Enumerable.Range(0, n).Where(r => r != Rank && answered[r] && Marshal.ReadInt64(theirs, 16 * r) != seq)
                .Select(r => $"rank {r} is in collective #{Marshal.ReadInt64(theirs, 16 * r)} (step {Marshal.ReadInt64(theirs, 16 * r + 8)})").ToList();
            var who = missing.Count == 0 ? "every rank answered" : $"{(missing.Count == 1 ? "rank" : "ranks")} {string.Join(", ", missing)} did not answer (dead or hung)";
            return $"collective error: rank {Rank} waited {_timeout.TotalSeconds:0.###} s (collective_timeout_s) in {op} #{seq} at step {Step}; {who}" +
                   (elsewhere.Count > 0 ? $"; {string.Join("; ", elsewhere)}" : "") + "; stopping every rank";
        }
        finally { Marshal.FreeHGlobal(mine); Marshal.FreeHGlobal(theirs); }
    }

    public void Dispose()
    {
        lock (Gate)
        {
            if (_open != this) return;
            if (MPI_Finalized(out var f) == 0 && f == 0) MPI_Finalize();
            _open = null;
        }
    }
}
