using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>Timing and memory measurement helpers shared by the benchmarks.</summary>
public static class Measure
{
    /// <summary>Median wall time (seconds) of <paramref name="reps"/> runs after <paramref name="warmup"/> unmeasured ones.</summary>
    public static (double Median, double[] All) Time(Action run, int warmup, int reps)
    {
        for (int i = 0; i < warmup; i++) run();
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            run();
            if (cuda.is_available()) cuda.synchronize();
            times[i] = sw.Elapsed.TotalSeconds;
        }
        var sorted = times.OrderBy(t => t).ToArray();
        return (sorted[sorted.Length / 2], times);
    }

    /// <summary>One warm-up run, then one measured run of <paramref name="step"/>: its peak resident
    /// memory above the RSS it started at (freed native memory is returned to the OS first, so the
    /// peak is this run's own) and its wall time.</summary>
    public static (long PeakBytes, double Seconds) PeakAbove(Action step)
    {
        step();
        SimKO.Host.Diagnostics.NativeHeap.Release();
        var before = SimKO.Host.Diagnostics.ProcessMemory.Read().Rss;
        SimKO.Host.Diagnostics.ProcessMemory.ResetPeak();
        var clock = Stopwatch.StartNew();
        step();
        var seconds = clock.Elapsed.TotalSeconds;
        return (SimKO.Host.Diagnostics.ProcessMemory.Read().Peak - before, seconds);
    }

    /// <summary>The machine as a benchmark report states it.</summary>
    public static Dictionary<string, object> Machine()
    {
        string cpu = "unknown";
        if (File.Exists("/proc/cpuinfo"))
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? cpu;
        return new()
        {
            ["cpu"] = cpu,
            ["cores"] = Environment.ProcessorCount,
            ["torch_threads"] = get_num_threads(),
            ["torchsharp"] = typeof(torch).Assembly.GetName().Version?.ToString() ?? "?",
            ["libtorch"] = __version__,
            ["cuda"] = cuda.is_available() ? $"{cuda.device_count()} device(s)" : "none",
            ["os"] = RuntimeInformation.OSDescription,
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
        };
    }

    /// <summary>Measured matmul throughput (FLOP/s): the best over square sizes up to
    /// <paramref name="maxN"/> of 2n³ FLOPs / median time. Small matmuls alone under-state what the
    /// machine reaches (a 1024² product measured below a d512 model's training step here).</summary>
    public static double MatmulPeak(Device device, ScalarType dtype, int maxN = 2048, int reps = 5)
    {
        double best = 0;
        for (int n = 512; n <= maxN; n *= 2)
        {
            using var scope = NewDisposeScope();
            var a = randn(n, n, dtype: dtype, device: device);
            var b = randn(n, n, dtype: dtype, device: device);
            var (median, _) = Time(() => { using var c = a.matmul(b); }, warmup: 2, reps: reps);
            best = System.Math.Max(best, 2.0 * n * n * n / median);
        }
        return best;
    }
}
