using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Data.Sandbox;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// `bench --only code`: how fast the code sandbox grades. Gradings per second of a trivial HumanEval-style
/// program (prompt + completion + tests + check) on the pool (one pre-started worker per core), and the cost of
/// isolation: per-program latency of a cold bare <c>/usr/bin/python3</c>, of the pool (one program at a time)
/// and of a cold sandbox started for one program. Writes <c>report["code_grading"]</c>.
/// </summary>
public static class CodeGradingBench
{
    /// <summary>HumanEval/53 (add) with its completion and tests, as the harness runs it.</summary>
    public const string TrivialProgram =
        "def add(x: int, y: int):\n    \"\"\"Add two numbers x and y\n    >>> add(2, 3)\n    5\n    >>> add(5, 7)\n    12\n    \"\"\"\n" +
        "    return x + y\n\n\n\nMETADATA = {}\n\n\ndef check(candidate):\n    assert candidate(0, 1) == 1\n    assert candidate(1, 0) == 1\n" +
        "    assert candidate(2, 3) == 5\n    assert candidate(5, 7) == 12\n    assert candidate(7, 5) == 12\n\ncheck(add)";

    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        table.AppendLine("## Code grading (sandbox)").AppendLine();
        var settings = SandboxSettings.Defaults;
        if (BenchSandbox.Open(settings, "code_grading", report, table, log) is not { } pool) return;
        using (pool)
        {
            int programs = quick ? 300 : 2000, latencyReps = quick ? 20 : 100, coldReps = quick ? 5 : 20;
            var batch = Enumerable.Repeat(TrivialProgram, programs).ToArray();
            var warm = pool.GradeMany(Enumerable.Repeat(TrivialProgram, 4 * settings.WorkerCount).ToArray());  // starts every worker
            if (!warm.All(r => r.Passed)) throw new InvalidOperationException($"code bench: the trivial program did not pass: {warm.First(r => !r.Passed).Describe()}");
            var sw = Stopwatch.StartNew();
            var results = pool.GradeMany(batch);
            double batchSeconds = sw.Elapsed.TotalSeconds;
            int passed = results.Count(r => r.Passed);
            double rate = programs / batchSeconds;

            double pooled = Median(latencyReps, () => { if (!pool.Grade(TrivialProgram).Passed) throw new InvalidOperationException("code bench: pooled run failed"); });
            double inWorker = results.Select(r => r.Seconds).Order().ElementAt(programs / 2);
            double bare = Median(coldReps, () => BarePython(settings.Python));
            double cold = Median(coldReps, () => { if (!CodeSandbox.RunOnce(TrivialProgram, settings).Passed) throw new InvalidOperationException("code bench: cold sandbox run failed"); });

            string F(double v, string fmt) => v.ToString(fmt, CultureInfo.InvariantCulture);
            report["code_grading"] = new JsonObject
            {
                ["isolation"] = pool.Isolation.ToString(),
                ["pid_namespace_per_worker"] = pool.PidNamespace,
                ["interpreter"] = settings.Python,
                ["workers"] = settings.WorkerCount,
                ["cores"] = Environment.ProcessorCount,
                ["programs"] = programs,
                ["passed"] = passed,
                ["batch_seconds"] = batchSeconds,
                ["gradings_per_second"] = rate,
                ["target_gradings_per_second"] = 100,
                ["pooled_seconds_per_program"] = pooled,
                ["in_worker_seconds_per_program"] = inWorker,
                ["bare_python_seconds"] = bare,
                ["sandbox_cold_seconds"] = cold,
                ["isolation_overhead_cold_seconds"] = cold - bare,
                ["pooled_speedup_over_bare_python"] = bare / pooled,
            };
            table.AppendLine($"{programs:N0} trivial HumanEval programs (HumanEval/53 with its tests) on {settings.WorkerCount} sandboxed workers ({pool.Isolation}, " +
                             $"{(pool.PidNamespace ? "each alone in a pid namespace" : "no pid namespace")}): **{F(rate, "N0")} gradings/s** (target ≥ 100; {passed:N0} passed).").AppendLine();
            table.AppendLine("| one program, one at a time | seconds |").AppendLine("|---|---|");
            table.AppendLine($"| bare `{settings.Python}`, cold (no isolation) | {F(bare, "F4")} |");
            table.AppendLine($"| sandbox, cold (namespaces + root + worker started for it) | {F(cold, "F4")} |");
            table.AppendLine($"| sandbox pool (pre-started worker; fork per program) | {F(pooled, "F4")} |");
            table.AppendLine($"| of which inside the worker (fork, limits, run, clean-up) | {F(inWorker, "F4")} |").AppendLine();
            log.LogInformation("code grading: {Rate:F0} gradings/s on {Workers} workers; per program: bare python {Bare:F4} s, cold sandbox {Cold:F4} s, pooled {Pooled:F4} s",
                               rate, settings.WorkerCount, bare, cold, pooled);
        }
    }

    static double Median(int reps, Action run)
    {
        run();
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            run();
            times[i] = sw.Elapsed.TotalSeconds;
        }
        Array.Sort(times);
        return times[reps / 2];
    }

    /// <summary>The trivial program under a fresh, unisolated interpreter (the baseline isolation is measured against).</summary>
    static void BarePython(string python)
    {
        var psi = new ProcessStartInfo(python) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-I", "-B", "-c", TrivialProgram }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {python}");
        var err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"code bench: bare {python} failed ({p.ExitCode}): {err}");
    }
}
