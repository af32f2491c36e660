using System.Diagnostics;

namespace SimKO.Host.Diagnostics;

/// <summary>Which code produced a result: the git commit of the working directory (with "+dirty"
/// when tracked files differ from it), so every report can say what made it.</summary>
public static class Provenance
{
    static string? _commit;

    /// <summary>The commit as <c>sha</c> or <c>sha+dirty</c>; "unknown" outside a git checkout.</summary>
    public static string Commit() => _commit ??= Read();

    static string Read()
    {
        var sha = Git("rev-parse HEAD");
        if (sha is null || sha.Length < 7) return "unknown";
        var status = Git("status --porcelain --untracked-files=no");
        return string.IsNullOrWhiteSpace(status) ? sha : sha + "+dirty";
    }

    static string? Git(string args)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("git", args)
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
                WorkingDirectory = Environment.CurrentDirectory,
            });
            if (p is null) return null;
            var output = p.StandardOutput.ReadToEnd().Trim();
            p.StandardError.ReadToEnd();
            if (!p.WaitForExit(10_000)) { p.Kill(true); return null; }
            return p.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception) { return null; }
    }
}
