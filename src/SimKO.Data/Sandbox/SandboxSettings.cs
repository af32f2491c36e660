using System.Globalization;

namespace SimKO.Data.Sandbox;

/// <summary>How programs are kept away from the host.</summary>
public enum Isolation
{
    /// <summary>Bubblewrap where it is installed, else unshare; never none.</summary>
    Auto,
    /// <summary><c>bwrap</c> (bubblewrap): user, mount, network, pid, ipc and uts namespaces and a root of its own.</summary>
    Bubblewrap,
    /// <summary><c>unshare</c> (util-linux): the same namespaces, the root built by <c>Sandbox/setup.sh</c>.</summary>
    Unshare,
    /// <summary>No isolation at all (<c>--unsafe-no-sandbox</c>): the program sees the host's files and network,
    /// keeping only the rlimits, the wall-clock timeout and a temporary working folder. Only on explicit request.</summary>
    None,
}

/// <summary>
/// Limits of the code sandbox (one program per child process). Defaults suit HumanEval-style unit tests.
/// <list type="bullet">
/// <item><c>WallSeconds</c> (10): wall-clock time per program; past it the program's whole process tree is killed (timed out).</item>
/// <item><c>CpuSeconds</c> (5): CPU time per process (RLIMIT_CPU; SIGXCPU then SIGKILL one second later; timed out).</item>
/// <item><c>MemoryMegabytes</c> (512): address space per process (RLIMIT_AS); a MemoryError is "memory exceeded".</item>
/// <item><c>MaxProcesses</c> (16): processes a program may start besides itself (RLIMIT_NPROC in the sandbox's own user).</item>
/// <item><c>MaxOutputBytes</c> (1 MiB): bytes a program may print (stdout + stderr); past it, killed (output too large).</item>
/// <item><c>TmpMegabytes</c> (64): size of the sandbox's writable temporary folder (a tmpfs; also the largest file).</item>
/// <item><c>Workers</c> (0 = one per core): sandboxed worker processes grading in parallel.</item>
/// <item><c>Isolation</c> (Auto): see <see cref="Sandbox.Isolation"/>; None only on explicit request.</item>
/// <item><c>Python</c> (<c>/usr/bin/python3</c>): the system's interpreter (the sandbox shows only /usr, so it must live there).</item>
/// </list>
/// </summary>
public sealed record SandboxSettings(
    double WallSeconds = 10,
    int CpuSeconds = 5,
    int MemoryMegabytes = 512,
    int MaxProcesses = 16,
    long MaxOutputBytes = 1L << 20,
    int TmpMegabytes = 64,
    int Workers = 0,
    Isolation Isolation = Isolation.Auto,
    string Python = "/usr/bin/python3")
{
    /// <summary>The documented defaults.</summary>
    public static readonly SandboxSettings Defaults = new();

    /// <summary>Worker processes actually started: <see cref="Workers"/>, or one per core when 0.</summary>
    public int WorkerCount => Workers > 0 ? Workers : Environment.ProcessorCount;

    /// <summary>Every problem with these settings at once (empty when they are usable), each naming the field
    /// and the range it must be in.</summary>
    public List<string> Validate()
    {
        var p = new List<string>();
        string F(double v) => v.ToString("G", CultureInfo.InvariantCulture);
        if (!(WallSeconds > 0 && WallSeconds <= 3600)) p.Add($"sandbox.wall_seconds must be in (0, 3600], got {F(WallSeconds)}");
        if (CpuSeconds is < 1 or > 3600) p.Add($"sandbox.cpu_seconds must be 1..3600, got {CpuSeconds}");
        if (MemoryMegabytes is < 64 or > 65536) p.Add($"sandbox.memory_megabytes must be 64..65536 (the interpreter itself needs ~30 MB of address space), got {MemoryMegabytes}");
        if (MaxProcesses is < 0 or > 4096) p.Add($"sandbox.max_processes must be 0..4096, got {MaxProcesses}");
        if (MaxOutputBytes is < 1024 or > 1L << 30) p.Add($"sandbox.max_output_bytes must be 1024..1073741824, got {MaxOutputBytes}");
        if (TmpMegabytes is < 1 or > 4096) p.Add($"sandbox.tmp_megabytes must be 1..4096, got {TmpMegabytes}");
        if (Workers is < 0 or > 256) p.Add($"sandbox.workers must be 0 (one per core)..256, got {Workers}");
        if (!Enum.IsDefined(Isolation)) p.Add($"sandbox.isolation must be one of {string.Join(", ", Enum.GetNames<Isolation>())}, got {(int)Isolation}");
        if (string.IsNullOrWhiteSpace(Python) || !Path.IsPathFullyQualified(Python)) p.Add($"sandbox.python must be an absolute path to the interpreter, got '{Python}'");
        return p;
    }

    /// <summary>Throws <see cref="ArgumentException"/> listing every problem, if any.</summary>
    public SandboxSettings Validated()
    {
        var problems = Validate();
        if (problems.Count > 0) throw new ArgumentException("sandbox settings: " + string.Join("; ", problems));
        return this;
    }
}
