namespace SimKO.Data.Datasets;

/// <summary>
/// Where the published datasets live: <c>$SIMKO_DATASETS</c> when set, else <c>../shared/datasets</c> next to the
/// repository (found by walking up from the working directory, then from the executable, to the folder
/// holding <c>SimKO.sln</c>), else <c>../shared/datasets</c> relative to the working directory.
/// </summary>
public static class DatasetRoot
{
    /// <summary>The environment variable that overrides the default root.</summary>
    public const string EnvironmentVariable = "SIMKO_DATASETS";

    /// <summary>The dataset root to use (it may not exist).</summary>
    public static string Default()
    {
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(env)) return Path.GetFullPath(env);
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            var repo = FindRepository(start);
            if (repo is not null) return Path.GetFullPath(Path.Combine(repo, "..", "shared", "datasets"));
        }
        return Path.GetFullPath(Path.Combine("..", "shared", "datasets"));
    }

    /// <summary>The default root when it exists, else null (tests skip then).</summary>
    public static string? TryFind()
    {
        var root = Default();
        return Directory.Exists(root) ? root : null;
    }

    static string? FindRepository(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SimKO.sln"))) return dir.FullName;
        return null;
    }
}
