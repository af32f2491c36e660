using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Host.Collective;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// `bench --only collective` (issue 21): MPI all-reduce bandwidth of 2 ranks on this machine for
/// 1 MB … 256 MB float32 buffers (launched as <c>mpirun -np 2 simko collective-check --bench</c>),
/// beside the memcpy bandwidth of one process (the local physical limit); and the per-step cost of data
/// parallelism on the Countdown base: the seconds per step of <c>simko train</c> as one process and as
/// <c>mpirun -np 2</c>, the same global batch (16 prompts × 8 samples), one torch thread per rank. On a
/// machine whose cores other processes share, only an indication (the load average is reported).
/// </summary>
public static class CollectiveBench
{
    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        int[] sizes = quick ? [1, 16] : [1, 4, 16, 64, 256];
        var json = new JsonObject();
        // memcpy: bytes copied per second by one copy_ of a 256 MB (quick 64 MB) float32 tensor, median of 5
        long bytes = (quick ? 64 : 256) * 1048576L;
        using (var src = ones(bytes / 4, ScalarType.Float32))
        using (var dst = empty(bytes / 4, ScalarType.Float32))
        {
            var t = new List<double>();
            for (int i = 0; i < 6; i++) { var c = Stopwatch.StartNew(); dst.copy_(src); if (i > 0) t.Add(c.Elapsed.TotalSeconds); }
            t.Sort();
            json["memcpy_gbps"] = bytes / t[t.Count / 2] / 1e9;
            json["memcpy_bytes"] = bytes;
        }
        var mpirun = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists);
        string? skipped = null;
        if (mpirun is null) skipped = "mpirun is not installed: apt-get install -y openmpi-bin";
        else
        {
            var file = Path.Combine(Path.GetTempPath(), $"simko-allreduce-{Environment.ProcessId}.json");
            var psi = new ProcessStartInfo(mpirun) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "--allow-run-as-root", "--oversubscribe", "-np", "2", "-x", "OMP_NUM_THREADS=1", "dotnet", Path.Combine(AppContext.BaseDirectory, "simko.dll"),
                         LaunchEnvironment.CheckCommand, "--timeout", "300", "--bench", file, "--sizes-mb", string.Join(",", sizes) })
                psi.ArgumentList.Add(a);
            psi.Environment["OMP_NUM_THREADS"] = "1";
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            var output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0 || !File.Exists(file)) skipped = $"mpirun -np 2 simko collective-check --bench failed ({p.ExitCode}): {output}{err.Result}";
            else
            {
                foreach (var (k, v) in JsonNode.Parse(File.ReadAllText(file))!.AsObject()) json[k] = v?.DeepClone();
                File.Delete(file);
            }
        }
        if (mpirun is not null && skipped is null) TrainSteps(json, mpirun, quick, log);
        // other processes compete for the cores: the load average says how much the figures are worth
        if (File.Exists("/proc/loadavg")) json["load_average_1min"] = double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture);
        if (skipped is not null) { json["skipped"] = skipped; log.LogWarning("bench collective: {Why}", skipped); }
        report["collective"] = json;
        static string F(double x) => x.ToString("0.00", CultureInfo.InvariantCulture);
        table.AppendLine("## Collectives (MPI, 2 ranks on this machine, one torch thread each)").AppendLine();
        if (json["load_average_1min"] is { } load) table.AppendLine($"- load average (1 min) at the end: {load} on {Environment.ProcessorCount} cores");
        table.AppendLine($"- memcpy of {bytes / 1048576} MB in one process: **{F(json["memcpy_gbps"]!.GetValue<double>())} GB/s**");
        if (skipped is not null) { table.AppendLine($"- all-reduce: skipped ({skipped})").AppendLine(); return; }
        table.AppendLine().AppendLine("| buffer | all-reduce time | algorithm bandwidth | bus bandwidth (× 2(N−1)/N) |").AppendLine("|---:|---:|---:|---:|");
        foreach (var mb in sizes)
            table.AppendLine($"| {mb} MB | {F(json[$"allreduce_s_{mb}mb"]!.GetValue<double>() * 1000)} ms | {F(json[$"allreduce_gbps_{mb}mb"]!.GetValue<double>())} GB/s | {F(json[$"allreduce_busbw_gbps_{mb}mb"]!.GetValue<double>())} GB/s |");
        table.AppendLine();
        if (json["dp_skipped"] is { } why) table.AppendLine($"- data-parallel training steps: skipped ({why})").AppendLine();
        else if (json["dp_step_s_1rank"] is not null)
            table.AppendLine($"- Countdown base, 16 prompts × 8 samples per step, steps 2…{json["dp_steps"]}: **{F(json["dp_step_s_1rank"]!.GetValue<double>())} s** per step as one process, " +
                             $"**{F(json["dp_step_s_2ranks"]!.GetValue<double>())} s** as 2 ranks (× {F(json["dp_speedup_2ranks"]!.GetValue<double>())}); " +
                             $"2 ranks' slowest rank: rollout {F(json["dp_rollout_s_max_2ranks"]!.GetValue<double>())} s, update {F(json["dp_update_s_max_2ranks"]!.GetValue<double>())} s per step").AppendLine();
    }

    /// <summary>Seconds per step of <c>simko train</c> on a Countdown base as one process and as 2 ranks (the first
    /// step, with its start-up, left out): dp_step_s_1rank, dp_step_s_2ranks, dp_speedup_2ranks, and the 2 ranks'
    /// slowest rollout and update per step (dp_rollout_s_max_2ranks, dp_update_s_max_2ranks).</summary>
    static void TrainSteps(JsonObject json, string mpirun, bool quick, ILogger log)
    {
        int steps = quick ? 3 : 6;
        var root = Path.Combine(Path.GetTempPath(), $"simko-dp-bench-{Environment.ProcessId}");
        try
        {
            var basePath = Path.Combine(root, "base");
            var task = SimKO.Host.Runs.TaskBinding.Create(SimKO.Cli.RunSpec.BuiltinTask.Countdown);
            using (var model = SimKO.Host.Runs.TinyModel.Create(task, 1))
            {
                SimKO.Host.Training.WarmStart.Run(new SimKO.Host.Model.ModelPolicy(model), rng => task.Example(rng, 0.7), task.Tokenizer.PadId,
                    new SimKO.Host.Training.WarmStartSettings(quick ? 50 : 150, 64, 3e-3, 0.9, 0.99, 1.0, 1), log);
                SimKO.Host.Checkpoints.HfFolder.Save(model, task.Tokenizer, basePath);
            }
            string[] Train(string outDir) =>
            [
                Path.Combine(AppContext.BaseDirectory, "simko.dll"), "train", "--set", "task=countdown", "--set", $"model={basePath}", "--set", "method=grpo",
                "--set", $"steps={steps}", "--set", "prompts_per_step=16", "--set", "samples_per_prompt=8", "--set", "tensorboard=false",
                "--set", "checkpoint_every=1000", "--set", $"out={outDir}",
            ];
            string? Launch(string exe, IEnumerable<string> args)
            {
                var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                foreach (var a in args) psi.ArgumentList.Add(a);
                psi.Environment["OMP_NUM_THREADS"] = "1";
                using var p = Process.Start(psi)!;
                var err = p.StandardError.ReadToEndAsync();
                var output = p.StandardOutput.ReadToEnd();
                p.WaitForExit();
                return p.ExitCode == 0 ? null : $"{exe} {string.Join(" ", args)} failed ({p.ExitCode}): {output}{err.Result}";
            }
            var one = Path.Combine(root, "one"); var two = Path.Combine(root, "two");
            var problem = Launch("dotnet", Train(one))
                          ?? Launch(mpirun, new[] { "--allow-run-as-root", "--oversubscribe", "-np", "2", "-x", "OMP_NUM_THREADS=1", "dotnet" }.Concat(Train(two)));
            if (problem is not null) { json["dp_skipped"] = problem; log.LogWarning("bench collective: {Why}", problem); return; }
            static List<JsonObject> Lines(string dir) => File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
            static double PerStep(List<JsonObject> m) => (m[^1]["time_s"]!.GetValue<double>() - m[0]["time_s"]!.GetValue<double>()) / (m.Count - 1);
            var (a, b) = (Lines(one), Lines(two));
            json["dp_steps"] = steps;
            json["dp_step_s_1rank"] = PerStep(a);
            json["dp_step_s_2ranks"] = PerStep(b);
            json["dp_speedup_2ranks"] = PerStep(a) / PerStep(b);
            json["dp_rollout_s_max_2ranks"] = b.Skip(1).Average(m => m["rollout_s_max"]!.GetValue<double>());
            json["dp_update_s_max_2ranks"] = b.Skip(1).Average(m => m["update_s_max"]!.GetValue<double>());
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, true);
        }
    }
}
