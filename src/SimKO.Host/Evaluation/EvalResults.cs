using SimKO.Math;

namespace SimKO.Host.Evaluation;

/// <summary>Per-problem outcome of sampling: n samples, c correct, and whether the majority answer was right.</summary>
public sealed record ProblemOutcome(string Id, int N, int C, bool MajorityCorrect);

/// <summary>One benchmark evaluated for one model.</summary>
public sealed record BenchmarkResult(string Benchmark, IReadOnlyList<ProblemOutcome> Problems)
{
    /// <summary>A reward function's <c>reward/&lt;key&gt;</c> means and <c>reward/errors</c> count over every sample
    /// of the benchmark; null without a reward function.</summary>
    public IReadOnlyDictionary<string, double>? RewardMetrics { get; init; }

    public int N => Problems.Count == 0 ? 0 : Problems.Min(p => p.N);

    /// <summary>Mean unbiased pass@k over problems.</summary>
    public double PassAt(int k) => Problems.Average(p => PassAtK.passAtK(p.N, p.C, k));

    /// <summary>mean@n: average fraction of correct samples.</summary>
    public double MeanAtN => Problems.Average(p => (double)p.C / p.N);

    /// <summary>maj@n: fraction of problems whose most frequent answer is correct.</summary>
    public double MajAtN => Problems.Average(p => p.MajorityCorrect ? 1.0 : 0.0);
}
