using System.Diagnostics;

namespace SimKO.Host.Diagnostics;

/// <summary>Which code produced a result: the git commit of the working directory (with "+dirty"
/// when tracked files differ from it), so every report can say what made it. The published results
/// (<c>docs/results/</c>, which <c>scripts/reproduce.sh</c> with PUBLISH=1 overwrites) do not count: a
/// reproduction run after another one's publication in the same checkout ran clean code.</summary>
public static class Provenance
{
    static string? _commit;

    /// <summary>The commit as <c>sha</c> or <c>sha+dirty</c>; "unknown" outside a git checkout.</summary>
    public static string Commit() => _commit ??= Read(Environment.CurrentDirectory);

    /// <summary>The commit of the checkout at <paramref name="directory"/>, as <see cref="Commit"/>.</summary>
    public static string Read(string directory)
    {
        var sha = Git("rev-parse HEAD", directory);
        if (sha is null || sha.Length < 7) return "unknown";
        var status = Git("status --porcelain --untracked-files=no -- :(top) :(top,exclude)docs/results", directory);
        return status is null ? sha + "+dirty" : string.IsNullOrWhiteSpace(status) ? sha : sha + "+dirty";
    }

    static string? Git(string args, string directory)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("git", args)
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
                WorkingDirectory = directory,
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
