using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Data.Rewards;
using SimKO.Data.Sandbox;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// `bench --only reward-fn`: how fast user reward functions (verl's <c>compute_score</c>, <c>reward_fn=</c>) grade
/// through the sandbox pool, one batch per worker as a training step sends them: responses graded per second
/// for a trivial function (string comparison) and a sympy one (simplify(answer − truth) == 0), the first
/// call (workers already started) and the best of three after. Writes <c>report["reward_fn"]</c>.
/// </summary>
public static class RewardFunctionBench
{
    const string Trivial = "def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n    return 1.0 if solution_str.strip() == ground_truth else 0.0\n";
    const string Sympy = "from sympy import simplify, sympify\n\n\ndef compute_score(data_source, solution_str, ground_truth, extra_info=None):\n" +
                         "    try:\n        return {\"score\": float(simplify(sympify(solution_str) - sympify(ground_truth)) == 0), \"parsed\": 1.0}\n" +
                         "    except Exception:\n        return {\"score\": 0.0, \"parsed\": 0.0}\n";

    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        table.AppendLine("## Reward functions (reward_fn, in the sandbox)").AppendLine();
        var settings = SandboxSettings.Defaults;
        if (BenchSandbox.Open(settings, "reward_fn", report, table, log) is not { } pool) return;
        var dir = Directory.CreateTempSubdirectory("simko-bench-reward-").FullName;
        try
        {
            using (pool)
            {
                pool.GradeMany(Enumerable.Repeat("pass", 2 * settings.WorkerCount).ToArray());  // starts every worker
                int n = quick ? 256 : 2048;
                var rng = new Random(5);
                var samples = Enumerable.Range(0, n).Select(i =>
                {
                    int a = rng.Next(1, 9), b = rng.Next(1, 9);
                    // half equal in another written form, half wrong
                    var truth = $"(x + {a})*(x + {b})";
                    var response = i % 2 == 0 ? $"x**2 + {a + b}*x + {a * b}" : $"x**2 + {a + b + 1}*x + {a * b}";
                    return new RewardSample("bench", response, truth);
                }).ToArray();
                var json = new JsonObject { ["workers"] = settings.WorkerCount, ["cores"] = Environment.ProcessorCount, ["responses"] = n };
                table.AppendLine($"{n:N0} responses per call, one batch per worker ({settings.WorkerCount} workers).").AppendLine();
                table.AppendLine("| function | first call, responses/s | best of 3 after, responses/s | errors |").AppendLine("|---|---:|---:|---:|");
                foreach (var (name, source) in new[] { ("trivial", Trivial), ("sympy", Sympy) })
                {
                    var path = Path.Combine(dir, name + ".py");
                    File.WriteAllText(path, source);
                    var fn = RewardFunction.Load(path);
                    var sw = Stopwatch.StartNew();
                    var first = fn.Score(pool, samples);
                    double firstSeconds = sw.Elapsed.TotalSeconds;
                    double best = double.MaxValue;
                    for (int r = 0; r < 3; r++)
                    {
                        sw.Restart();
                        fn.Score(pool, samples);
                        best = System.Math.Min(best, sw.Elapsed.TotalSeconds);
                    }
                    int errors = first.Count(x => x.Failed);
                    double correct = first.Where(x => !x.Failed).Select(x => x.Score).DefaultIfEmpty(0).Average();
                    json[name] = new JsonObject
                    {
                        ["first_call_seconds"] = firstSeconds, ["first_call_responses_per_second"] = n / firstSeconds,
                        ["best_seconds"] = best, ["responses_per_second"] = n / best, ["errors"] = errors, ["mean_score"] = correct,
                    };
                    table.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {n / firstSeconds:N0} | {n / best:N0} | {errors} |"));
                    log.LogInformation("reward_fn {Name}: {Rate:F0} responses/s ({Errors} errors, mean score {Mean:F2})", name, n / best, errors, correct);
                }
                table.AppendLine();
                report["reward_fn"] = json;
            }
        }
        finally { Directory.Delete(dir, true); }
    }
}
