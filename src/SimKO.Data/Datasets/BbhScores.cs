namespace SimKO.Data.Datasets;

/// <summary>BIG-Bench Hard results: accuracy per task and their unweighted mean (how BBH is reported).</summary>
/// <param name="PerTask">Task name → mean score of its problems.</param>
/// <param name="Average">Mean over tasks of <paramref name="PerTask"/> (each task counts once, whatever its size).</param>
public sealed record BbhScores(IReadOnlyDictionary<string, double> PerTask, double Average)
{
    /// <summary>Groups scored BBH problems by their <c>task</c> metadata (set by the <c>bbh</c> presets).</summary>
    /// <exception cref="ArgumentException">A problem has no <c>task</c> metadata.</exception>
    public static BbhScores Summarize(IEnumerable<(Problem Problem, double Score)> scored)
    {
        var groups = new SortedDictionary<string, (double Sum, int Count)>(StringComparer.Ordinal);
        foreach (var (p, s) in scored)
        {
            if (!p.Metadata.TryGetValue("task", out var task))
                throw new ArgumentException($"problem {p.Id} has no 'task' metadata; load it with a bbh preset");
            var (sum, n) = groups.GetValueOrDefault(task);
            groups[task] = (sum + s, n + 1);
        }
        var perTask = groups.ToDictionary(kv => kv.Key, kv => kv.Value.Sum / kv.Value.Count);
        return new BbhScores(perTask, perTask.Count == 0 ? double.NaN : perTask.Values.Average());
    }
}
