using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using SimKO.Data.Math;

namespace SimKO.Data.Sandbox;

/// <summary>The sandbox cannot isolate programs here (or would not start); says how to opt out.</summary>
public sealed class SandboxUnavailableException : Exception
{
    public SandboxUnavailableException(string message) : base(message) { }
}

/// <summary>
/// Builds the command that starts one sandboxed worker (<c>Sandbox/worker.py</c> under the system's python):
/// <list type="bullet">
/// <item>unshare: <c>[setpriv --reuid=65534 …] unshare --user --map-root-user --mount --net --pid --ipc --uts --fork --kill-child
/// sh -c &lt;setup.sh&gt;</c>: a root of its own (tmpfs, read-only /usr, four device files, a tmpfs /tmp), no network
/// interface but a down loopback, a fresh pid namespace whose init is the worker.</item>
/// <item>bubblewrap: the same namespaces and the same root, built by <c>bwrap</c> (its init is pid 1, the worker pid 2).
/// Not installed on the machine this was written on, so only the unshare path is exercised by the tests there.</item>
/// <item>none: the worker runs as it is, in a host temporary folder.</item>
/// </list>
/// When the host process is root, the sandbox first drops to uid/gid 65534 (nobody) with setpriv, so that
/// inside it "root" is an unprivileged user on the host: host files it could reach stay read-only by
/// permission as well as by mount, and RLIMIT_NPROC applies (the kernel exempts host root from it).
/// The environment is cleared; the worker gets PATH, LANG and HOME only.
/// </summary>
internal static class SandboxLauncher
{
    /// <summary>Processes of the sandbox's own user that exist before a program forks, added to MaxProcesses for
    /// RLIMIT_NPROC (which counts them all): unshare, the worker and the program; bubblewrap adds its init.</summary>
    internal static int OwnProcesses(Isolation isolation) => isolation == Isolation.Bubblewrap ? 4 : 3;

    static readonly Lazy<string> Worker = new(() => Resource("SimKO.Data.Sandbox.worker.py"));
    static readonly Lazy<string> Setup = new(() => Resource("SimKO.Data.Sandbox.setup.sh"));

    static string Resource(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"embedded resource {name} missing from SimKO.Data");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>An executable on PATH or in the usual system folders, or null.</summary>
    internal static string? FindTool(string name)
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]);
        foreach (var dir in dirs)
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    /// <summary>The isolation that <paramref name="requested"/> means on this machine.</summary>
    internal static Isolation Resolve(Isolation requested) => requested switch
    {
        Isolation.Auto => FindTool("bwrap") is not null ? Isolation.Bubblewrap : Isolation.Unshare,
        _ => requested,
    };

    /// <summary>Host paths that must not be visible inside the sandbox (the repository, the program's folder, the
    /// home folder, the host's /etc and /proc); the worker checks them when it starts. Paths under /usr are
    /// visible there by design (read-only) and so are not listed.</summary>
    internal static List<string> MustBeHidden()
    {
        var paths = new List<string> { "/etc/passwd", "/proc/self", AppContext.BaseDirectory };
        var repo = Datasets.FindRepoRoot(AppContext.BaseDirectory);
        if (repo is not null) paths.Add(repo);
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (home.Length > 1) paths.Add(home);
        return paths.Where(p => !p.StartsWith("/usr/", StringComparison.Ordinal) && !p.StartsWith("/tmp", StringComparison.Ordinal)).ToList();
    }

    /// <summary>The start command of one worker. <paramref name="hostTmp"/> is its working folder when
    /// <paramref name="isolation"/> is None (otherwise the sandbox's own /tmp is).</summary>
    internal static ProcessStartInfo StartInfo(SandboxSettings s, Isolation isolation, string? hostTmp)
    {
        bool isolated = isolation != Isolation.None;
        var config = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["tmp"] = isolated ? "/tmp" : hostTmp ?? throw new ArgumentNullException(nameof(hostTmp)),
            ["wall_seconds"] = s.WallSeconds,
            ["cpu_seconds"] = s.CpuSeconds,
            ["memory_bytes"] = (long)s.MemoryMegabytes << 20,
            ["max_processes"] = s.MaxProcesses + OwnProcesses(isolation),
            ["file_bytes"] = (long)s.TmpMegabytes << 20,
            ["max_output_bytes"] = s.MaxOutputBytes,
            ["isolated"] = isolated,
            ["must_be_hidden"] = isolated ? MustBeHidden() : new List<string>(),
        });
        var psi = new ProcessStartInfo
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardInputEncoding = new UTF8Encoding(false),
            StandardOutputEncoding = new UTF8Encoding(false),
            StandardErrorEncoding = new UTF8Encoding(false),
            WorkingDirectory = isolated ? "/" : hostTmp!,
        };
        psi.Environment.Clear();
        psi.Environment["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin";
        psi.Environment["LANG"] = "C.UTF-8";
        psi.Environment["HOME"] = isolated ? "/tmp" : hostTmp!;
        var args = new List<string>();
        if (isolated && Environment.IsPrivilegedProcess)
        {
            var setpriv = FindTool("setpriv") ?? throw new SandboxUnavailableException(
                "the sandbox runs as root and needs setpriv (util-linux) to drop to an unprivileged user; it is not installed");
            args.AddRange([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]);
        }
        string tmpMb = s.TmpMegabytes.ToString(CultureInfo.InvariantCulture);
        switch (isolation)
        {
            case Isolation.Unshare:
                args.AddRange([FindTool("unshare") ?? throw Missing("unshare"), "--user", "--map-root-user", "--mount", "--net",
                               "--pid", "--ipc", "--uts", "--fork", "--kill-child", "--",
                               "/bin/sh", "-c", Setup.Value, "sh", s.Python, tmpMb, Worker.Value, config]);
                break;
            case Isolation.Bubblewrap:
                args.AddRange([FindTool("bwrap") ?? throw Missing("bwrap"), "--unshare-user", "--unshare-pid", "--unshare-net",
                               "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session",
                               "--ro-bind", "/usr", "/usr"]);
                foreach (var d in new[] { "bin", "sbin", "lib", "lib32", "lib64", "libx32" })
                {
                    var info = new FileInfo("/" + d);
                    if (info.LinkTarget is { } target) args.AddRange(["--symlink", target, "/" + d]);
                    else if (Directory.Exists("/" + d)) args.AddRange(["--ro-bind", "/" + d, "/" + d]);
                }
                args.AddRange(["--dir", "/etc", "--dev", "/dev", "--size", ((long)s.TmpMegabytes << 20).ToString(CultureInfo.InvariantCulture),
                               "--tmpfs", "/tmp", "--remount-ro", "/", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
                               "--setenv", "LANG", "C.UTF-8", "--setenv", "HOME", "/tmp", "--chdir", "/tmp",
                               s.Python, "-I", "-B", "-c", Worker.Value, config]);
                break;
            case Isolation.None:
                args.AddRange([s.Python, "-I", "-B", "-c", Worker.Value, config]);
                break;
            default:
                throw new ArgumentException($"isolation {isolation} is not resolved (call Resolve first)");
        }
        psi.FileName = args[0];
        foreach (var a in args.Skip(1)) psi.ArgumentList.Add(a);
        return psi;
    }

    static SandboxUnavailableException Missing(string tool) => new(
        $"the sandbox needs {tool}, which is not installed here. {CodeSandbox.OptOut}");
}
