using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Data.Math;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>Verifier speed on the real answer formats: every reference answer of the math presets,
/// wrapped as a completion ("… \boxed{answer}."), graded against its own reference and against the
/// next row's (so half are wrong), on one thread.</summary>
public static class GradingBench
{
    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        var answers = new List<string>();
        foreach (var preset in Datasets.Names)
        {
            try { answers.AddRange(Datasets.Load(preset).Select(p => p.Answer)); }
            catch (Exception e) when (e is DatasetException or FileNotFoundException or DirectoryNotFoundException or ArgumentException)
            { log.LogWarning("grading bench: {Preset} not loaded ({Message})", preset, e.Message); }
        }
        if (answers.Count == 0)
        {
            table.AppendLine("## Verifier").AppendLine().AppendLine("not run: no dataset under ../shared/datasets").AppendLine();
            return;
        }
        var pairs = answers.Select((a, i) => (Completion: $"So the final answer is \\boxed{{{a}}}.", Reference: i % 2 == 0 ? a : answers[(i + 1) % answers.Count])).ToArray();
        int correct = 0;
        var (median, _) = Measure.Time(() =>
        {
            correct = 0;
            foreach (var (c, r) in pairs) if (MathGrader.Grade(c, r).Correct) correct++;
        }, warmup: 1, reps: quick ? 3 : 7);
        var rate = pairs.Length / median;
        report["grading"] = new JsonObject { ["pairs"] = pairs.Length, ["seconds"] = median, ["gradings_per_s"] = rate, ["judged_correct"] = correct, ["target"] = ">= 20000 per second on one core" };
        table.AppendLine("## Verifier (math grader, one thread)").AppendLine();
        table.AppendLine($"{pairs.Length:N0} gradings of the presets' real answers (half against their own reference, half against another's; {correct:N0} judged correct): " +
                         $"**{rate.ToString("N0", CultureInfo.InvariantCulture)} gradings/s** (target ≥ 20,000).").AppendLine();
        log.LogInformation("grading: {Rate:F0} gradings/s", rate);
    }
}
