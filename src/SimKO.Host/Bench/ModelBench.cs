using SimKO.Host.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Host.Model;
using SimKO.Host.Rollout;
using SimKO.Host.Training;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>Benchmarks of the model side: update-step throughput and MFU, rollout with and without
/// the KV cache, and whether long sampling/training loops grow resident memory.</summary>
public static class ModelBench
{
    static string F(double x, string fmt = "0.##") => x.ToString(fmt, CultureInfo.InvariantCulture);

    static CausalLM Build(int vocab, int d, int layers, int heads, Device device)
    {
        var m = new CausalLM(ModelConfig.Tiny(vocab, d, layers, heads, heads, 4 * d, 1024));
        m.InitWeights(1);
        return m.MoveTo(device, ScalarType.Float32);
    }

    static long Params(CausalLM m) => m.parameters().Sum(p => p.numel());

    /// <summary>forward + backward + AdamW on next-token cross-entropy: tokens/s and MFU = 6·N·tokens/time ÷ peak.</summary>
    public static void Update(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        double peak = report["machine"]?["matmul_peak_fp32_gflops"]?.GetValue<double>() * 1e9
                      ?? Measure.MatmulPeak(device, ScalarType.Float32);
        var sizes = quick
            ? new[] { (Name: "tiny (d128, 2 layers)", D: 128, L: 2, H: 4, B: 64, T: 16) }
            : new[] { (Name: "tiny (d128, 2 layers)", D: 128, L: 2, H: 4, B: 64, T: 16), (Name: "d256, 4 layers", D: 256, L: 4, H: 4, B: 64, T: 64), (Name: "d512, 8 layers", D: 512, L: 8, H: 8, B: 16, T: 128) };
        var rows = new JsonArray();
        table.AppendLine("## Update step (forward + backward + AdamW), fp32").AppendLine();
        table.AppendLine("| model | parameters | tokens/step | time/step | tokens/s | MFU (6·N·tokens / peak) |").AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (var s in sizes)
        {
            using var model = Build(64, s.D, s.L, s.H, device);
            var policy = new ModelPolicy(model);
            var opt = new AdamW(policy.NamedParameters.Select(p => (p.Name, (Tensor)p.Param)).ToList());
            var gen = new Generator(3, device);
            var ids = randint(64, [s.B, s.T + 1], generator: gen, device: device);
            var mask = ones_like(ids);
            void Step()
            {
                using var scope = NewDisposeScope();
                var logits = policy.Logits(ids.narrow(1, 0, s.T), mask.narrow(1, 0, s.T));
                var loss = nn.functional.cross_entropy(logits.reshape(-1, 64), ids.narrow(1, 1, s.T).reshape(-1));
                opt.ZeroGrad();
                loss.backward();
                opt.Step(1e-4);
            }
            var (median, _) = Measure.Time(Step, warmup: 2, reps: quick ? 3 : 5);
            long n = Params(model), tokens = (long)s.B * s.T;
            double mfu = 6.0 * n * tokens / median / peak;
            rows.Add(new JsonObject { ["model"] = s.Name, ["parameters"] = n, ["tokens_per_step"] = tokens, ["seconds"] = median, ["tokens_per_s"] = tokens / median, ["mfu"] = mfu });
            table.AppendLine($"| {s.Name} | {n:N0} | {tokens} | {F(median * 1000, "0")} ms | {F(tokens / median, "0")} | {F(100 * mfu, "0.0")} % |");
            log.LogInformation("update {Name}: {Tps:F0} tokens/s, MFU {Mfu:P1}", s.Name, tokens / median, mfu);
        }
        table.AppendLine().AppendLine("Target: MFU ≥ 60 % for the d512, 8-layer model.").AppendLine();
        report["update"] = rows;
    }

    /// <summary>Sampling tokens/s with and without the KV cache (B = 64, d256, 4 layers).</summary>
    public static void Rollout(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        using var model = Build(64, 256, 4, 4, device);
        model.eval();
        var prompts = Enumerable.Range(0, 64).Select(i => Enumerable.Range(0, 8).Select(j => 2 + (i * 7 + j * 3) % 60).ToArray()).ToList();
        var rows = new JsonArray();
        table.AppendLine("## Rollout (B = 64, d256 × 4 layers, 8-token prompts, no early stop)").AppendLine();
        table.AppendLine("| new tokens | KV cache tokens/s | no cache tokens/s | speed-up |").AppendLine("|---:|---:|---:|---:|");
        foreach (var newTokens in quick ? new[] { 32 } : new[] { 32, 128, 512 })
        {
            var req = new GenerateRequest(prompts, 1, 1.0, 1.0, 0, newTokens, 5);          // no stop token: every row runs to the end
            double Rate(bool cache)
            {
                var sampler = new KvCacheSampler(model, 0, cache);
                var (t, _) = Measure.Time(() => sampler.Generate(req), warmup: 1, reps: quick ? 1 : 3);
                return 64.0 * newTokens / t;
            }
            double RateOnce(bool cache)
            {
                var sampler = new KvCacheSampler(model, 0, cache);
                var (t, _) = Measure.Time(() => sampler.Generate(req), warmup: 0, reps: 1);
                return 64.0 * newTokens / t;
            }
            var withCache = Rate(true);
            // 512 new tokens without a cache takes about a quarter of an hour on 2 cores: only with --full
            bool full = report["full"]?.GetValue<bool>() ?? false;
            double? noCache = newTokens <= 128 ? Rate(false) : full ? RateOnce(false) : null;
            rows.Add(new JsonObject { ["new_tokens"] = newTokens, ["kv_cache_tokens_per_s"] = withCache, ["no_cache_tokens_per_s"] = noCache, ["speedup"] = noCache is double nc ? withCache / nc : null });
            table.AppendLine($"| {newTokens} | {F(withCache, "0")} | {(noCache is double x ? F(x, "0") : "not run (quadratic; `--full` runs it once)")} | {(noCache is double y ? F(withCache / y, "0.0") + "×" : "—")} |");
            log.LogInformation("rollout {N} new tokens: cache {C:F0} tokens/s, no cache {NC}", newTokens, withCache, noCache);
        }
        table.AppendLine().AppendLine("Target: KV cache ≥ 10× no cache at 128 new tokens.").AppendLine();
        report["rollout"] = rows;
    }

    /// <summary>Resident memory across a long sampling loop and a long training loop (must not grow).</summary>
    public static void Memory(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        using var model = Build(20, 128, 2, 4, device);
        var sampler = new KvCacheSampler(model, 0);
        var policy = new ModelPolicy(model);
        var opt = new AdamW(policy.NamedParameters.Select(p => (p.Name, (Tensor)p.Param)).ToList());
        var prompts = Enumerable.Range(0, 16).Select(i => new[] { 2 + i % 10, 3, 4 }).ToList();
        int loops = quick ? 100 : 1000;
        long[] Track(Action step)
        {
            var marks = new List<long>();
            for (int i = 0; i < loops; i++)
            {
                step();
                if (i == loops / 10 || i == loops - 1) { GC.Collect(); marks.Add(ProcessMemory.Read().Rss); }
            }
            return marks.ToArray();
        }
        var sampling = Track(() => sampler.Generate(new GenerateRequest(prompts, 2, 1.0, 1.0, 0, 10, 1)));
        var gen = new Generator(9);
        var training = Track(() =>
        {
            using var scope = NewDisposeScope();
            var ids = randint(20, [32, 12], generator: gen);
            var logits = policy.Logits(ids, ones_like(ids));
            var loss = nn.functional.cross_entropy(logits.reshape(-1, 20), ids.reshape(-1));
            opt.ZeroGrad(); loss.backward(); opt.Step(1e-4);
        });
        report["memory"] = new JsonObject
        {
            ["loops"] = loops,
            ["sampling_rss_after_10pct"] = sampling[0], ["sampling_rss_end"] = sampling[1],
            ["training_rss_after_10pct"] = training[0], ["training_rss_end"] = training[1],
        };
        string Mb(long b) => F(b / 1048576.0, "0.0");
        table.AppendLine($"## Resident memory over {loops} sampling calls and {loops} training steps").AppendLine();
        table.AppendLine("| loop | RSS after 10 % | RSS at the end | growth |").AppendLine("|---|---:|---:|---:|");
        table.AppendLine($"| sampling | {Mb(sampling[0])} MiB | {Mb(sampling[1])} MiB | {Mb(sampling[1] - sampling[0])} MiB |");
        table.AppendLine($"| training | {Mb(training[0])} MiB | {Mb(training[1])} MiB | {Mb(training[1] - training[0])} MiB |").AppendLine();
        log.LogInformation("memory: sampling {A} → {B} MiB, training {C} → {D} MiB", Mb(sampling[0]), Mb(sampling[1]), Mb(training[0]), Mb(training[1]));
    }
}
