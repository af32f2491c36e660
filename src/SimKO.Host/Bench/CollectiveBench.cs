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
/// beside the memcpy bandwidth of one process (the local physical limit).
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
    }
}
