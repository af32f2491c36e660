using System.Globalization;
using System.Text;
using SimKO.Host.Evaluation;
using SimKO.Math;

namespace SimKO.Host.Reporting;

/// <summary>A row of the report: one model (e.g. "GRPO") evaluated once per seed.</summary>
public sealed record ReportRow(string Name, IReadOnlyList<IReadOnlyList<BenchmarkResult>> Seeds);

/// <summary>
/// pass@K tables in the layout of the paper's Table 1 / Table 2 (methods as rows, K = 1, 2, 4, …
/// as columns, one block per benchmark and the average over benchmarks), in percent, with the
/// mean ± standard deviation over seeds when there are several.
/// </summary>
public static class PassAtKReport
{
    public const string Average = "Average";

    /// <summary>K values every row can report: 1, 2, 4, … up to the smallest n.</summary>
    public static int[] Ks(IEnumerable<ReportRow> rows)
    {
        var n = rows.SelectMany(r => r.Seeds).SelectMany(s => s).Min(b => b.N);
        return PassAtK.ladder(n).ToArray();
    }

    /// <summary>Benchmarks in first-seen order.</summary>
    public static List<string> Benchmarks(IEnumerable<ReportRow> rows) =>
        rows.SelectMany(r => r.Seeds).SelectMany(s => s).Select(b => b.Benchmark).Distinct().ToList();

    /// <summary>pass@k of a row on a benchmark (or the average), one value per seed.</summary>
    public static double[] Values(ReportRow row, string benchmark, int k) =>
        row.Seeds.Select(seed =>
            benchmark == Average ? seed.Average(b => b.PassAt(k)) : seed.Single(b => b.Benchmark == benchmark).PassAt(k)).ToArray();

    public static (double Mean, double Std) MeanStd(double[] xs)
    {
        var mean = xs.Average();
        var std = xs.Length > 1 ? System.Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Length - 1)) : 0;
        return (mean, std);
    }

    /// <summary>The table: with several benchmarks, the average block first, then one block per benchmark
    /// (or only the average with <paramref name="averageOnly"/>).</summary>
    public static string Markdown(IReadOnlyList<ReportRow> rows, string title, bool averageOnly = false)
    {
        var ks = Ks(rows);
        var benchmarks = Benchmarks(rows);
        var blocks = benchmarks.Count > 1 ? (averageOnly ? [Average] : new[] { Average }.Concat(benchmarks).ToList()) : benchmarks;
        var sb = new StringBuilder();
        sb.AppendLine($"### {title}").AppendLine();
        var seedCounts = rows.Select(r => r.Seeds.Count).Distinct().ToList();
        sb.AppendLine($"pass@K in %, unbiased estimator; {(seedCounts.Max() > 1 ? "mean ± sample std over seeds (" + string.Join("/", rows.Select(r => $"{r.Name}: {r.Seeds.Count}")) + ")" : "one seed")}. Best per column in **bold**.").AppendLine();
        foreach (var bench in blocks)
        {
            sb.AppendLine($"**{bench}**").AppendLine();
            sb.Append("| Method |").AppendJoin("", ks.Select(k => $" @{k} |")).Append(" mean@n | maj@n |").AppendLine();
            sb.Append("|---|").AppendJoin("", ks.Select(_ => "---:|")).Append("---:|---:|").AppendLine();
            var best = ks.Select(k => rows.Max(r => MeanStd(Values(r, bench, k)).Mean)).ToArray();
            foreach (var row in rows)
            {
                sb.Append($"| {row.Name} |");
                for (int i = 0; i < ks.Length; i++)
                {
                    var (mean, std) = MeanStd(Values(row, bench, ks[i]));
                    var cell = Cell(mean, std, row.Seeds.Count);
                    sb.Append(mean >= best[i] - 1e-12 ? $" **{cell}** |" : $" {cell} |");
                }
                var meanAt = row.Seeds.Select(s => bench == Average ? s.Average(b => b.MeanAtN) : s.Single(b => b.Benchmark == bench).MeanAtN).ToArray();
                var majAt = row.Seeds.Select(s => bench == Average ? s.Average(b => b.MajAtN) : s.Single(b => b.Benchmark == bench).MajAtN).ToArray();
                sb.Append($" {Cell(MeanStd(meanAt).Mean, MeanStd(meanAt).Std, row.Seeds.Count)} | {Cell(MeanStd(majAt).Mean, MeanStd(majAt).Std, row.Seeds.Count)} |").AppendLine();
            }
            sb.AppendLine();
        }
        return sb.ToString();
    }

    static string Cell(double mean, double std, int seeds) =>
        seeds > 1 ? string.Create(CultureInfo.InvariantCulture, $"{100 * mean:0.0} ± {100 * std:0.0}")
                  : string.Create(CultureInfo.InvariantCulture, $"{100 * mean:0.0}");

    /// <summary>pass@K curves (mean over seeds, band = ± std) on a log2 K axis.</summary>
    public static void Plot(string path, IReadOnlyList<ReportRow> rows, string benchmark, string title)
    {
        var ks = Ks(rows);
        var series = rows.Select(r =>
        {
            var stats = ks.Select(k => MeanStd(Values(r, benchmark, k))).ToArray();
            return new Series(r.Name, ks.Select(k => (double)k).ToArray(), stats.Select(s => s.Mean).ToArray(),
                r.Seeds.Count > 1 ? stats.Select(s => s.Std).ToArray() : null);
        }).ToList();
        Reporting.Plot.Lines(path, title, "K (samples)", "pass@K", series, logX: true);
    }
}
