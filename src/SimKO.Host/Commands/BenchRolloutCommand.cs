using System.Diagnostics;
using System.Text.Json;
using SimKO.Cli;
using SimKO.Host.Model;
using SimKO.Host.Rollout;
using SimKO.Host.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.CommandHandlers;

/// <summary>
/// <c>simko bench-rollout</c>: one random Qwen2-style model (GQA, tied head); sampling tokens/s
/// with and without the KV cache, training-step tokens/s (forward + backward + clip + AdamW on
/// next-token cross-entropy), and resident memory over a long sampling loop. Prints a table and
/// writes the numbers as JSON.
/// </summary>
public static class BenchRolloutCommand
{
    public static int Run(BenchRolloutArgs.BenchRolloutOptions o)
    {
        Device device;
        ScalarType dtype;
        try
        {
            device = TorchRuntime.ParseDevice(o.Device);
            dtype = TorchRuntime.ParseDType(o.Dtype, device);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            Console.Error.WriteLine($"bench-rollout: {e.Message}");
            return 2;
        }
        if (o.Threads is { Value: var threads })
        {
            if (threads < 1) { Console.Error.WriteLine($"bench-rollout: --threads must be >= 1 (found {threads})."); return 2; }
            torch.set_num_threads(threads);
        }
        int heads = System.Math.Max(1, o.DModel / 32);
        var config = ModelConfig.Tiny(Architecture.Qwen2, o.Vocab, hiddenSize: o.DModel, layers: o.Layers, heads: heads,
            kvHeads: heads % 2 == 0 ? heads / 2 : heads, intermediateSize: (o.DModel * 8 / 3 + 7) / 8 * 8, maxPositions: 8192);
        using var model = CausalLM.CreateRandom(config, 0, device, dtype);
        long nParams = model.parameters().Sum(p => p.numel());
        Console.Error.WriteLine($"bench-rollout: {TorchRuntime.Describe(device, dtype)}, {torch.get_num_threads()} threads; " +
            $"model d {o.DModel}, {o.Layers} layers, {heads} heads / {config.NumKeyValueHeads} K/V heads, vocab {o.Vocab}, {nParams / 1e6:F2}M parameters");

        var rng = new Random(1);
        int[][] Prompts(int n, int maxLen) => Enumerable.Range(0, n)
            .Select(_ => Enumerable.Range(0, rng.Next(maxLen / 2, maxLen + 1)).Select(_ => rng.Next(1, o.Vocab)).ToArray()).ToArray();
        var prompts = Prompts(o.Batch, o.PromptLength);
        // EOS outside the vocabulary: every row runs the full length, so both paths do equal work.
        int neverEos = o.Vocab;
        var settings = new SamplingSettings { MaxNewTokens = o.NewTokens, Temperature = 1.0, Seed = 1 };

        KvCacheRolloutEngine Engine(bool cache) => new(model, neverEos, 0, new RolloutEngineOptions(MaxBatchRows: o.Batch, UseCache: cache))
        {
            Progress = ProgressPrinter(cache ? "sampling, KV cache" : "sampling, no cache", o.Batch * o.NewTokens),
        };
        // Warm-up (first calls allocate and pick kernels).
        Engine(true).Generate(new RolloutRequest(prompts, settings with { MaxNewTokens = 4 }));
        Engine(false).Generate(new RolloutRequest(prompts, settings with { MaxNewTokens = 4 }));

        var cached = Engine(true).Generate(new RolloutRequest(prompts, settings));
        var uncached = Engine(false).Generate(new RolloutRequest(prompts, settings));
        bool sameTokens = cached.Responses.Zip(uncached.Responses).All(p => p.First.TokenIds.SequenceEqual(p.Second.TokenIds));

        var train = TrainingThroughput(model, o, rng, o.Quick ? 2 : 4);
        var memory = MemoryLoop(model, neverEos, o.Quick ? 200 : 1000, Prompts(8, 8), settings);

        double speedup = cached.Stats.TokensPerSecond / System.Math.Max(1e-9, uncached.Stats.TokensPerSecond);
        Console.WriteLine();
        Console.WriteLine($"| measurement (B {o.Batch}, prompts ≤ {o.PromptLength}, {o.NewTokens} new tokens) | tokens/s | seconds |");
        Console.WriteLine("|---|---:|---:|");
        Console.WriteLine($"| sampling, KV cache | {cached.Stats.TokensPerSecond:F0} | {cached.Stats.Seconds:F2} |");
        Console.WriteLine($"| sampling, no cache | {uncached.Stats.TokensPerSecond:F0} | {uncached.Stats.Seconds:F2} |");
        Console.WriteLine($"| training step (T {o.PromptLength + o.NewTokens}, fwd+bwd+AdamW) | {train.TokensPerSecond:F0} | {train.SecondsPerStep:F2} per step |");
        Console.WriteLine();
        Console.WriteLine($"KV cache speed-up: {speedup:F1}x; same sampled tokens with and without the cache: {(sameTokens ? "yes" : "NO")}");
        Console.WriteLine($"memory: {memory.Steps}-step sampling loop, resident {memory.RssBeforeMb:F0} MB -> {memory.RssAfterMb:F0} MB, live tensors {memory.LiveTensorDelta:+0;-0;0}");

        var report = new Dictionary<string, object>
        {
            ["device"] = device.ToString(),
            ["dtype"] = TorchRuntime.HfDTypeName(dtype),
            ["threads"] = torch.get_num_threads(),
            ["model"] = new Dictionary<string, object> { ["d_model"] = o.DModel, ["layers"] = o.Layers, ["heads"] = heads, ["kv_heads"] = config.NumKeyValueHeads, ["vocab"] = o.Vocab, ["parameters"] = nParams },
            ["batch"] = o.Batch,
            ["prompt_length_max"] = o.PromptLength,
            ["new_tokens"] = o.NewTokens,
            ["sampling_kv_cache_tokens_per_s"] = cached.Stats.TokensPerSecond,
            ["sampling_no_cache_tokens_per_s"] = uncached.Stats.TokensPerSecond,
            ["kv_cache_speedup"] = speedup,
            ["same_tokens_with_and_without_cache"] = sameTokens,
            ["training_tokens_per_s"] = train.TokensPerSecond,
            ["training_seconds_per_step"] = train.SecondsPerStep,
            ["memory_loop_steps"] = memory.Steps,
            ["memory_rss_before_mb"] = memory.RssBeforeMb,
            ["memory_rss_after_mb"] = memory.RssAfterMb,
            ["memory_live_tensor_delta"] = memory.LiveTensorDelta,
        };
        var full = Path.GetFullPath(o.Output);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        File.Move(tmp, full, overwrite: true);
        Console.WriteLine($"wrote {o.Output}");
        return 0;
    }

    static Action<long, long> ProgressPrinter(string what, long total)
    {
        long next = 0;
        return (tokens, _) =>
        {
            if (tokens < next && tokens < total) return;
            Console.Error.Write($"\r  {what}: {tokens}/{total} tokens   ");
            next = tokens + System.Math.Max(1, total / 20);
            if (tokens >= total) Console.Error.WriteLine();
        };
    }

    sealed record TrainResult(double TokensPerSecond, double SecondsPerStep);

    /// <summary>fwd + bwd + clip + AdamW on next-token cross-entropy, one warm-up step then <paramref name="steps"/> timed.</summary>
    static TrainResult TrainingThroughput(CausalLM model, BenchRolloutArgs.BenchRolloutOptions o, Random rng, int steps)
    {
        int b = o.Batch, t = o.PromptLength + o.NewTokens;
        var data = Enumerable.Range(0, b * t).Select(_ => (long)rng.Next(0, o.Vocab)).ToArray();
        using var ids = torch.tensor(data, [b, t], device: model.Device);                  // [B, T]
        using var mask = torch.ones([b, t], ScalarType.Int64, model.Device);               // [B, T]
        using var opt = torch.optim.AdamW(model.parameters(), 1e-4);
        model.train();
        double timed = 0;
        for (int s = 0; s <= steps; s++)
        {
            var sw = Stopwatch.StartNew();
            using (var scope = torch.NewDisposeScope())
            {
                opt.zero_grad();
                var logits = model.forward(ids, mask);                                     // [B, T, V]
                var pred = logits.narrow(1, 0, t - 1).reshape(-1, o.Vocab);                 // [B*(T-1), V]
                var target = ids.narrow(1, 1, t - 1).reshape(-1);                          // [B*(T-1)]
                var loss = nn.functional.cross_entropy(pred, target);
                loss.backward();
                nn.utils.clip_grad_norm_(model.parameters(), 1.0);
                opt.step();
                _ = loss.item<float>();                                                     // wait for the step
            }
            if (s > 0) timed += sw.Elapsed.TotalSeconds;
            Console.Error.Write($"\r  training: step {s}/{steps}   ");
        }
        Console.Error.WriteLine();
        model.eval();
        double per = timed / steps;
        return new TrainResult(b * t / per, per);
    }

    sealed record MemoryResult(int Steps, double RssBeforeMb, double RssAfterMb, long LiveTensorDelta);

    /// <summary>A long sampling loop (8 rows, <paramref name="steps"/> new tokens): resident memory and live tensors before and after.</summary>
    static MemoryResult MemoryLoop(CausalLM model, int neverEos, int steps, int[][] prompts, SamplingSettings settings)
    {
        var engine = new KvCacheRolloutEngine(model, neverEos, 0, new RolloutEngineOptions())
        {
            Progress = ProgressPrinter("memory loop", (long)prompts.Length * steps),
        };
        var s = settings with { MaxNewTokens = steps };
        engine.Generate(new RolloutRequest(prompts, s with { MaxNewTokens = 16 }));   // warm-up
        GC.Collect(); GC.WaitForPendingFinalizers();
        var proc = Process.GetCurrentProcess();
        proc.Refresh();
        double before = proc.WorkingSet64 / 1e6;
        long liveBefore = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        engine.Generate(new RolloutRequest(prompts, s));
        GC.Collect(); GC.WaitForPendingFinalizers();
        proc.Refresh();
        return new MemoryResult(steps, before, proc.WorkingSet64 / 1e6, DisposeScopeManager.Statistics.ThreadTotalLiveCount - liveBefore);
    }
}
