using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace SimKO.Host.Reporting;

/// <summary>
/// A comparison of two methods paired by seed: both train with seed s from the same base, so they
/// share each seed's prompt order and sampling seeds, and the per-seed difference removes what the
/// seed alone explains. The mean difference gets a 95 % Student-t interval over seeds (n − 1 degrees
/// of freedom); with one seed there is none, and below three seeds the report says the interval
/// rests on too few seeds.
/// </summary>
public sealed record PairedDifference(double[] PerSeed, double Mean, double? Low, double? High)
{
    public int Seeds => PerSeed.Length;

    /// <summary>Whether the interval exists and lies wholly above (+1) or below (−1) zero; 0 otherwise.</summary>
    public int Sign => Low is double lo && High is double hi ? (lo > 0 ? 1 : hi < 0 ? -1 : 0) : 0;

    /// <summary>The per-seed differences a − b (same seed index), their mean and the 95 % t interval.</summary>
    public static PairedDifference Of(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        if (a.Count != b.Count || a.Count == 0)
            throw new ArgumentException($"paired seeds: {a.Count} and {b.Count} values; a pairing needs the same seeds, at least one");
        var d = a.Zip(b, (x, y) => x - y).ToArray();
        double mean = d.Average();
        if (d.Length < 2) return new PairedDifference(d, mean, null, null);
        double sd = System.Math.Sqrt(d.Sum(x => (x - mean) * (x - mean)) / (d.Length - 1));
        double half = TQuantile975(d.Length - 1) * sd / System.Math.Sqrt(d.Length);
        return new PairedDifference(d, mean, mean - half, mean + half);
    }

    /// <summary>The 0.975 quantile of Student's t with <paramref name="df"/> degrees of freedom: a table to
    /// 30, then the Cornish–Fisher expansion around the normal quantile (error below 1e-4 there).</summary>
    public static double TQuantile975(int df)
    {
        double[] table = [12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
                          2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
                          2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423];
        if (df < 1) throw new ArgumentOutOfRangeException(nameof(df), df, "degrees of freedom must be >= 1");
        if (df <= table.Length) return table[df - 1];
        const double z = 1.959963984540054;
        double n = df;
        return z + (z * z * z + z) / (4 * n) + (5 * System.Math.Pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * n * n)
                 + (3 * System.Math.Pow(z, 7) + 19 * System.Math.Pow(z, 5) + 17 * z * z * z - 15 * z) / (384 * n * n * n);
    }

    static string Pct(double x) => (100 * x).ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>"+2.3 [−0.4, 5.0]" in points, or the mean alone with one seed.</summary>
    public string Cell() => Low is double lo && High is double hi ? $"{Pct(Mean)} [{Pct(lo)}, {Pct(hi)}]" : $"{Pct(Mean)} (one seed: no interval)";

    public JsonObject ToJson() => new()
    {
        ["per_seed"] = new JsonArray(PerSeed.Select(x => (JsonNode?)x).ToArray()),
        ["mean"] = Mean,
        ["ci95"] = Low is double lo && High is double hi ? new JsonArray(lo, hi) : null,
        ["seeds"] = Seeds,
        ["note"] = Seeds < 3 ? $"{Seeds} seed{(Seeds == 1 ? "" : "s")}: fewer than 3, the interval {(Seeds == 1 ? "does not exist" : "rests on too few seeds")}" : null,
    };

    /// <summary>The report's section: per-seed differences and the interval at each K.</summary>
    public static string Markdown(string a, string b, IReadOnlyList<(int K, PairedDifference D)> at)
    {
        var sb = new StringBuilder($"### {a} − {b}, paired by seed (points; mean and 95 % t interval over seeds)\n\n");
        sb.Append("| | ").AppendJoin(" | ", at.Select(x => $"pass@{x.K}")).AppendLine(" |");
        sb.Append("|---|").AppendJoin("", at.Select(_ => "---:|")).AppendLine();
        int seeds = at[0].D.Seeds;
        for (int s = 0; s < seeds; s++)
            sb.Append($"| seed {s} | ").AppendJoin(" | ", at.Select(x => Pct(x.D.PerSeed[s]))).AppendLine(" |");
        sb.Append("| mean [95 % CI] | ").AppendJoin(" | ", at.Select(x => x.D.Cell())).AppendLine(" |");
        if (seeds < 3)
            sb.AppendLine().AppendLine($"Only {seeds} seed{(seeds == 1 ? "" : "s")}: {(seeds == 1 ? "no interval can be formed" : "the t interval rests on too few seeds to say much")}; run with --seeds 3 or more.");
        return sb.ToString();
    }
}
