using SimKO.Host.Bench;
using SimKO.Host.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace SimKO.Host.Commands;

/// <summary>
/// `simko bench`: measures, on whatever machine it runs, the matmul peak (the yardstick), the update
/// step's throughput and MFU, SimKO's overhead over GRPO at Qwen's vocabulary, rollout speed with and
/// without the KV cache, verifier speed and memory growth; writes bench.json and a readable bench.md.
/// </summary>
public static class BenchCommand
{
    /// <summary>A named section: runs and adds its figures to the report and table.</summary>
    public delegate void Section(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log);

    /// <summary>Sections by name, in the order they run. Other parts of the host register theirs here.</summary>
    public static readonly List<(string Name, Section Run)> Sections =
    [
        ("machine", Machine),
        ("loss-overhead", LossOverhead),
        ("update", ModelBench.Update),
        ("rollout", ModelBench.Rollout),
        ("rollout-batching", RolloutBatchingBench.Run),
        ("decode", DecodeBench.Run),
        ("grading", GradingBench.Run),
        ("code", CodeGradingBench.Run),
        ("reward-fn", RewardFunctionBench.Run),
        ("chat-template", ChatTemplateBench.Run),
        ("memory", ModelBench.Memory),
        ("serve", ServeBench.Run),
        ("activation-memory", ActivationMemoryBench.Run),
        ("lm-head-memory", LmHeadMemoryBench.Run),
        ("lora", LoraBench.Run),
        ("collective", CollectiveBench.Run),
    ];

    public static int Run(bool quick, string outDir, IReadOnlyList<string> only, string deviceName, ILogger log, bool full = false)
    {
        var device = new Device(deviceName);
        var unknown = only.Where(o => Sections.All(s => s.Name != o)).ToList();
        if (unknown.Count > 0)
        {
            Console.Error.WriteLine($"error: unknown bench section(s) {string.Join(", ", unknown)}; valid: {string.Join(", ", Sections.Select(s => s.Name))}");
            return 2;
        }
        var report = new JsonObject { ["quick"] = quick, ["full"] = full, ["started"] = DateTime.UtcNow.ToString("o") };
        var table = new StringBuilder("# SimKO benchmark\n\n");
        var peaks = new JsonObject();
        var peakRows = new List<string>();
        foreach (var (name, section) in Sections)
        {
            if (only.Count > 0 && !only.Contains(name)) continue;
            log.LogInformation("bench: {Section}…", name);
            // each section's own peak: the kernel's high-water mark is reset to the current RSS first
            bool reset = ProcessMemory.ResetPeak();
            var before = ProcessMemory.Read().Rss;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            section(report, table, quick, device, log);
            var (_, peak) = ProcessMemory.Read();
            peaks[name] = new JsonObject { ["rss_before_bytes"] = before, ["peak_rss_bytes"] = reset ? peak : null, ["seconds"] = clock.Elapsed.TotalSeconds };
            peakRows.Add($"| {name} | {F(before / 1048576.0, "0")} MiB | {(reset ? F(peak / 1048576.0, "0") + " MiB" : "n/a (no clear_refs)")} | {F(clock.Elapsed.TotalSeconds, "0")} s |");
            report["sections"] = peaks;
            Save(outDir, report, WithPeaks(table, peakRows));
        }
        table = WithPeaks(table, peakRows);
        Console.WriteLine(table.ToString());
        log.LogInformation("wrote {Dir}/bench.json and bench.md", outDir);
        return 0;
    }

    /// <summary>The table with the per-section peak memory appended.</summary>
    static StringBuilder WithPeaks(StringBuilder table, List<string> rows) =>
        new StringBuilder(table.ToString()).AppendLine("## Peak resident memory and wall time per section").AppendLine()
            .AppendLine("| section | RSS at start | peak RSS during the section | wall time |").AppendLine("|---|---:|---:|---:|")
            .AppendJoin("\n", rows).AppendLine().AppendLine();

    static void Save(string outDir, JsonObject report, StringBuilder table)
    {
        AtomicFile.WriteAllText(Path.Combine(outDir, "bench.json"), report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.WriteAllText(Path.Combine(outDir, "bench.md"), table.ToString());
    }

    static string F(double x, string fmt = "0.##") => x.ToString(fmt, CultureInfo.InvariantCulture);

    static void Machine(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        var machine = Measure.Machine();
        var fp32 = Measure.MatmulPeak(device, ScalarType.Float32, quick ? 1024 : 4096, quick ? 3 : 5);
        var machineJson = new JsonObject();
        foreach (var (k, v) in machine) machineJson[k] = JsonValue.Create(v.ToString());
        machineJson["matmul_peak_fp32_gflops"] = fp32 / 1e9;
        if (device.type == TorchSharp.DeviceType.CUDA)
            machineJson["matmul_peak_bf16_gflops"] = Measure.MatmulPeak(device, ScalarType.BFloat16, 4096, 7) / 1e9;
        report["machine"] = machineJson;
        table.AppendLine("## Machine").AppendLine();
        foreach (var (k, v) in machine) table.AppendLine($"- {k}: {v}");
        table.AppendLine($"- measured fp32 matmul peak: **{F(fp32 / 1e9, "0.0")} GFLOP/s** (best n×n matmul over n = 512 … {(quick ? 1024 : 4096)}, median of repetitions)").AppendLine();
    }

    static void LossOverhead(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        var r = LossOverheadBench.Run(device, vocab: quick ? 32_768 : 151_936, batch: quick ? 4 : 8, length: quick ? 32 : 64, reps: quick ? 3 : 5);
        report["loss_overhead"] = new JsonObject
        {
            ["vocab"] = r.Vocab, ["tokens"] = r.Tokens, ["hidden"] = r.Hidden,
            ["grpo_s"] = r.GrpoSeconds, ["simko_s"] = r.SimkoSeconds, ["time_ratio"] = r.TimeRatio,
            ["grpo_peak_bytes"] = r.GrpoPeakBytes, ["simko_peak_bytes"] = r.SimkoPeakBytes, ["baseline_bytes"] = r.BaselineBytes,
            ["memory_ratio"] = r.MemoryRatio,
            ["targets"] = "time_ratio <= 1.10, memory_ratio <= 1.05",
        };
        table.AppendLine($"## SimKO vs GRPO at V = {r.Vocab:N0} (LM head + loss, fwd + bwd, {r.Tokens} tokens)").AppendLine();
        table.AppendLine("| | GRPO | SimKO | ratio | target |").AppendLine("|---|---:|---:|---:|---:|");
        table.AppendLine($"| time (median) | {F(r.GrpoSeconds * 1000, "0.0")} ms | {F(r.SimkoSeconds * 1000, "0.0")} ms | {F(r.TimeRatio, "0.000")} | ≤ 1.10 |");
        table.AppendLine($"| peak RSS above start | {F((r.GrpoPeakBytes - r.BaselineBytes) / 1048576.0, "0")} MiB | {F((r.SimkoPeakBytes - r.BaselineBytes) / 1048576.0, "0")} MiB | {F(r.MemoryRatio, "0.000")} | ≤ 1.05 |").AppendLine();
    }
}
