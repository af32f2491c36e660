using System.Diagnostics;
using SimKO.Host.Collective;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Commands;

/// <summary>
/// <c>mpirun -np N simko collective-check [--timeout S] [--hang-rank R] [--die-rank R] [--step S]</c>:
/// every collective of the launch's MPI on known values (all-reduce sum and mean, reduce-scatter,
/// all-gather, broadcast, barrier), one line per rank; exits 1 when a result is wrong. The fault
/// options make rank R hang (or die) before the all-reduce of step S, to see the others stop.
/// </summary>
public static class CollectiveCheckCommand
{
    public const string Name = LaunchEnvironment.CheckCommand;

    public static int Run(string[] args)
    {
        double timeout = 600; int hang = -1, die = -1; long step = 0; string? bench = null; var sizesMb = new List<int>();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--timeout": timeout = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--hang-rank": hang = int.Parse(Next()); break;
                case "--die-rank": die = int.Parse(Next()); break;
                case "--step": step = long.Parse(Next()); break;
                case "--bench": bench = Next(); break;
                case "--sizes-mb": sizesMb.AddRange(Next().Split(',').Select(int.Parse)); break;
                default:
                    Console.Error.WriteLine($"collective-check: unknown option '{args[i]}'; valid: --timeout S, --hang-rank R, --die-rank R, --step S, --bench FILE, --sizes-mb 1,4,…");
                    return 2;
            }
        }
        torch.set_num_threads(1);
        using var c = MpiBackend.Open(timeout);
        int w = c.WorldSize, r = c.Rank;
        var failures = new List<string>();
        void Expect(string what, Tensor got, float[] expected)
        {
            var g = got.data<float>().ToArray();
            if (!g.SequenceEqual(expected))
                failures.Add($"{what}: got [{string.Join(", ", g.Take(8))}…], expected [{string.Join(", ", expected.Take(8))}…]");
        }
        const int n = 6;
        c.Step = step;
        if (r == hang) { Console.Error.WriteLine($"rank {r}: hanging before step {step} (--hang-rank)"); Thread.Sleep(Timeout.Infinite); }
        if (r == die) { Console.Error.WriteLine($"rank {r}: dying before step {step} (--die-rank)"); Console.Error.Flush(); Process.GetCurrentProcess().Kill(); }
        // rank q holds i + 1000 q: the sum is w·i + 1000·w(w−1)/2
        var x = arange(n, ScalarType.Float32) + 1000f * r;
        c.AllReduce(x);
        Expect("all-reduce sum", x, Enumerable.Range(0, n).Select(i => (float)(w * i + 1000 * w * (w - 1) / 2)).ToArray());
        var y = arange(n, ScalarType.Float32) + 1000f * r;
        c.AllReduce(y, ReduceOp.Mean);
        Expect("all-reduce mean", y, Enumerable.Range(0, n).Select(i => (float)(w * i + 1000 * w * (w - 1) / 2) / w).ToArray());
        // rank q holds (q + 1)·j over [w·k]; rank r receives Σ(q + 1) · j for j in its shard
        const int k = 3;
        var s = c.ReduceScatter(arange(w * k, ScalarType.Float32) * (r + 1f));
        Expect("reduce-scatter", s, Enumerable.Range(r * k, k).Select(j => (float)(w * (w + 1) / 2 * j)).ToArray());
        var gathered = c.AllGather(full(k, (float)r));
        Expect("all-gather", gathered, Enumerable.Range(0, w * k).Select(j => (float)(j / k)).ToArray());
        var b = full(n, (float)r);
        c.Broadcast(b, w - 1);
        Expect("broadcast", b, Enumerable.Repeat((float)(w - 1), n).ToArray());
        c.Barrier();
        Console.WriteLine(failures.Count == 0
            ? $"rank {r}/{w}: all-reduce, reduce-scatter, all-gather, broadcast, barrier ok"
            : $"rank {r}/{w}: FAILED {string.Join("; ", failures)}");
        if (failures.Count == 0 && bench is not null) Bandwidth(c, bench, sizesMb.Count > 0 ? sizesMb : [1, 4, 16, 64, 256]);
        return failures.Count == 0 ? 0 : 1;
    }

    /// <summary>All-reduce (sum, in place) of float32 buffers of each size: median seconds over repetitions,
    /// algorithm bandwidth (bytes / s) and bus bandwidth (× 2(N−1)/N, what a ring moves per rank); rank 0 writes the JSON.</summary>
    static void Bandwidth(MpiBackend c, string path, IReadOnlyList<int> sizesMb)
    {
        var result = new System.Text.Json.Nodes.JsonObject { ["world_size"] = c.WorldSize };
        foreach (var mb in sizesMb)
        {
            long bytes = mb * 1048576L;
            using var buffer = ones(bytes / 4, ScalarType.Float32);
            int reps = mb >= 64 ? 3 : 7;
            var times = new List<double>();
            for (int i = 0; i <= reps; i++)
            {
                c.Barrier();
                var clock = Stopwatch.StartNew();
                c.AllReduce(buffer);
                var t = clock.Elapsed.TotalSeconds;
                if (i > 0) times.Add(t);                                   // the first is a warm-up
            }
            times.Sort();
            var median = times[times.Count / 2];
            result[$"allreduce_s_{mb}mb"] = median;
            result[$"allreduce_gbps_{mb}mb"] = bytes / median / 1e9;
            result[$"allreduce_busbw_gbps_{mb}mb"] = bytes / median / 1e9 * 2.0 * (c.WorldSize - 1) / c.WorldSize;
        }
        if (c.Rank == 0) AtomicFile.WriteAllText(path, result.ToJsonString());
        c.Barrier();
    }
}
