using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Collective;

/// <summary>
/// NCCL (<c>libnccl.so.2</c>) on CUDA tensors: rank 0's <c>ncclGetUniqueId</c> is broadcast over MPI
/// (NVIDIA's documented bootstrap), every collective runs on the default stream, which is synchronised
/// before the call returns (so the host may read the result); <c>ncclCommGetAsyncError</c> is checked
/// after each one, and a watchdog aborts the communicator and the job when one outlasts the timeout.
/// Host tensors (the step's counts and metrics, offloaded master weights) go over the MPI communicator
/// the NCCL one was bootstrapped from.
/// </summary>
public sealed class NcclBackend : ICollective
{
    const string Lib = "libnccl.so.2";
    enum DataType { Int32 = 2, Int64 = 4, Float16 = 6, Float32 = 7, Float64 = 8, BFloat16 = 9 }
    enum RedOp { Sum = 0, Avg = 4 }

    /// <summary>ncclUniqueId: 128 opaque bytes, passed by value.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 128)]
    struct UniqueId { long a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15; }

    [DllImport(Lib)] static extern int ncclGetUniqueId(out UniqueId id);
    [DllImport(Lib)] static extern int ncclCommInitRank(out IntPtr comm, int nranks, UniqueId id, int rank);
    [DllImport(Lib)] static extern int ncclCommDestroy(IntPtr comm);
    [DllImport(Lib)] static extern int ncclCommAbort(IntPtr comm);
    [DllImport(Lib)] static extern int ncclCommGetAsyncError(IntPtr comm, out int result);
    [DllImport(Lib)] static extern IntPtr ncclGetErrorString(int result);
    [DllImport(Lib)] static extern int ncclAllReduce(IntPtr send, IntPtr recv, nuint count, DataType type, RedOp op, IntPtr comm, IntPtr stream);
    [DllImport(Lib)] static extern int ncclReduceScatter(IntPtr send, IntPtr recv, nuint recvCount, DataType type, RedOp op, IntPtr comm, IntPtr stream);
    [DllImport(Lib)] static extern int ncclAllGather(IntPtr send, IntPtr recv, nuint sendCount, DataType type, IntPtr comm, IntPtr stream);
    [DllImport(Lib)] static extern int ncclBroadcast(IntPtr send, IntPtr recv, nuint count, DataType type, int root, IntPtr comm, IntPtr stream);

    readonly MpiBackend _mpi;
    readonly IntPtr _comm;
    readonly Device _device;
    long _sequence;

    public string Backend => "nccl";
    public int Rank => _mpi.Rank;
    public int WorldSize => _mpi.WorldSize;
    public int LocalRank => _mpi.LocalRank;
    public long Step { get => _mpi.Step; set => _mpi.Step = value; }

    /// <summary>Whether libnccl.so.2 can be loaded on this machine.</summary>
    public static bool Available(out string why)
    {
        if (NativeLibrary.TryLoad(Lib, out _)) { why = ""; return true; }
        why = $"collective=nccl needs NVIDIA's {Lib}, which cannot be loaded on this machine; install NCCL (e.g. apt-get install -y libnccl2 from NVIDIA's CUDA repository) or use collective=mpi";
        return false;
    }

    public NcclBackend(MpiBackend mpi, Device device)
    {
        if (!Available(out var why)) throw new InvalidOperationException(why);
        if (device.type != DeviceType.CUDA) throw new ArgumentException($"collective=nccl works on CUDA tensors; this run's device is {device}: use collective=mpi on the CPU");
        _mpi = mpi; _device = device;
        var bytes = new byte[128];
        if (mpi.Rank == 0)
        {
            Check(ncclGetUniqueId(out var id), "ncclGetUniqueId");
            bytes = ToBytes(id);
        }
        mpi.Broadcast(bytes, 0);
        Check(ncclCommInitRank(out _comm, mpi.WorldSize, FromBytes(bytes), mpi.Rank), "ncclCommInitRank");
    }

    static byte[] ToBytes(UniqueId id)
    {
        var b = new byte[128];
        MemoryMarshal.Write(b, in id);
        return b;
    }

    static UniqueId FromBytes(byte[] b) => MemoryMarshal.Read<UniqueId>(b);

    static void Check(int result, string call)
    {
        if (result != 0) throw new InvalidOperationException($"{call} failed: NCCL error {result} ({Marshal.PtrToStringAnsi(ncclGetErrorString(result))})");
    }

    static DataType TypeOf(ScalarType t, string op) => t switch
    {
        ScalarType.Float32 => DataType.Float32, ScalarType.Float64 => DataType.Float64, ScalarType.BFloat16 => DataType.BFloat16,
        ScalarType.Float16 => DataType.Float16, ScalarType.Int64 => DataType.Int64, ScalarType.Int32 => DataType.Int32,
        _ => throw new ArgumentException($"{op}: NCCL takes float32/64, bfloat16, float16, int32 or int64 tensors, got {t}"),
    };

    void OnDevice(Tensor t, string op)
    {
        CollectiveChecks.Flat(t, op);
        if (t.device_type != DeviceType.CUDA) throw new ArgumentException($"{op}: collective=nccl takes CUDA tensors, got one on {t.device}");
    }

    /// <summary>Synchronise the default stream under a watchdog, then check NCCL's asynchronous error.</summary>
    void Finish(string op)
    {
        long seq = ++_sequence;
        using var done = new ManualResetEventSlim();
        var watchdog = new Thread(() =>
        {
            if (done.Wait(TimeSpan.FromSeconds(_mpi.TimeoutSeconds))) return;
            Console.Error.WriteLine($"collective error: rank {Rank} waited {_mpi.TimeoutSeconds:0.###} s (collective_timeout_s) in NCCL {op} #{seq} at step {Step}; another rank is dead or hung; stopping every rank");
            Console.Error.Flush();
            ncclCommAbort(_comm);
            Environment.Exit(70);
        }) { IsBackground = true };
        watchdog.Start();
        cuda.synchronize(_device);
        done.Set();
        Check(ncclCommGetAsyncError(_comm, out var async), "ncclCommGetAsyncError");
        Check(async, $"NCCL {op} (asynchronous error)");
    }

    public void AllReduce(Tensor flat, ReduceOp op = ReduceOp.Sum)
    {
        if (flat.device_type == DeviceType.CPU) { _mpi.AllReduce(flat, op); return; }
        OnDevice(flat, "all-reduce");
        Check(ncclAllReduce(CollectiveChecks.DataPtr(flat), CollectiveChecks.DataPtr(flat), (nuint)flat.numel(), TypeOf(flat.dtype, "all-reduce"), op == ReduceOp.Mean ? RedOp.Avg : RedOp.Sum, _comm, IntPtr.Zero), "ncclAllReduce");
        Finish("all-reduce");
    }

    public Tensor ReduceScatter(Tensor flat, ReduceOp op = ReduceOp.Sum)
    {
        if (flat.device_type == DeviceType.CPU) return _mpi.ReduceScatter(flat, op);
        OnDevice(flat, "reduce-scatter");
        long k = CollectiveChecks.Divisible(flat, WorldSize, "reduce-scatter");
        var output = empty(k, flat.dtype, flat.device);
        Check(ncclReduceScatter(CollectiveChecks.DataPtr(flat), CollectiveChecks.DataPtr(output), (nuint)k, TypeOf(flat.dtype, "reduce-scatter"), op == ReduceOp.Mean ? RedOp.Avg : RedOp.Sum, _comm, IntPtr.Zero), "ncclReduceScatter");
        Finish("reduce-scatter");
        return output;
    }

    public Tensor AllGather(Tensor flat)
    {
        if (flat.device_type == DeviceType.CPU) return _mpi.AllGather(flat);
        OnDevice(flat, "all-gather");
        var output = empty(flat.numel() * WorldSize, flat.dtype, flat.device);
        Check(ncclAllGather(CollectiveChecks.DataPtr(flat), CollectiveChecks.DataPtr(output), (nuint)flat.numel(), TypeOf(flat.dtype, "all-gather"), _comm, IntPtr.Zero), "ncclAllGather");
        Finish("all-gather");
        return output;
    }

    public void Broadcast(Tensor flat, int root = 0)
    {
        if (flat.device_type == DeviceType.CPU) { _mpi.Broadcast(flat, root); return; }
        OnDevice(flat, "broadcast");
        Check(ncclBroadcast(CollectiveChecks.DataPtr(flat), CollectiveChecks.DataPtr(flat), (nuint)flat.numel(), TypeOf(flat.dtype, "broadcast"), root, _comm, IntPtr.Zero), "ncclBroadcast");
        Finish("broadcast");
    }

    public void Barrier() => _mpi.Barrier();

    public void Dispose()
    {
        ncclCommDestroy(_comm);
        _mpi.Dispose();
    }
}
