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
