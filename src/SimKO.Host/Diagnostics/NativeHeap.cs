using System.Runtime.InteropServices;

namespace SimKO.Host.Diagnostics;

/// <summary>
/// Hands freed native memory back to the OS (glibc <c>malloc_trim</c>): libtorch's CPU tensors come
/// from malloc, and glibc keeps freed blocks resident, so without this the resident set of a phase
/// that follows a larger one shows no growth at all and "peak RSS minus RSS before" reads zero.
/// The memory benchmarks call it before each measured phase. A no-op where glibc is absent.
/// </summary>
public static class NativeHeap
{
    [DllImport("libc", EntryPoint = "malloc_trim")]
    static extern int MallocTrim(nuint pad);

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int MallOpt(int param, int value);

    const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;

    /// <summary>
    /// From now on, every native block of 1 MiB or more gets its own mapping, returned to the OS as
    /// soon as it is freed (glibc otherwise raises its mmap threshold to 32 MiB as blocks are freed
    /// and keeps freed heap blocks resident), so peak RSS follows the live tensors closely. Slower
    /// allocation: for memory benchmarks only. False where glibc is absent.
    /// </summary>
    public static bool TrackLiveMemory()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { return MallOpt(M_MMAP_THRESHOLD, 1 << 20) == 1 && MallOpt(M_TRIM_THRESHOLD, 1 << 20) == 1; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    /// <summary>Release freed native memory; false where that is not possible here.</summary>
    public static bool Release()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        if (!OperatingSystem.IsLinux()) return false;
        try { MallocTrim(0); return true; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }
}
