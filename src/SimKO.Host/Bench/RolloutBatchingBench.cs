using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Cli;
using SimKO.Host.Model;
using SimKO.Host.Rollout;
using SimKO.Host.Runs;
using SimKO.Host.Training;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// `bench --only rollout-batching` (issue 19 §3): rollout tokens/s of the training loop's own engine
/// (<see cref="RunFactory.InProcessEngine"/>, called as the trainer calls it: prompts × samples in one
/// <see cref="GenerateRequest"/>) with static and with continuous batching, 64 sequences, on (a) the
/// Countdown base model (the tiny model after a short supervised warm-start, its own stop tokens) and
/// (b) a random d512 × 8 model (vocab 32,000) whose stop set holds 1/32 of the vocabulary, so response
/// lengths are geometric (mean ≈ 32, capped at max_new_tokens): very different lengths. Both engines
/// sample the same tokens for a seed, so both produce the same useful tokens; the bench checks it.
/// </summary>
public static class RolloutBatchingBench
{
    static string F(double x, string fmt) => x.ToString(fmt, CultureInfo.InvariantCulture);

    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        int reps = quick ? 1 : 3;
        var rows = new JsonObject();
        table.AppendLine("## Rollout batching (the training loop's engine, 64 sequences)").AppendLine();
        table.AppendLine("| model | max new tokens | mean response tokens | static tokens/s | continuous tokens/s | continuous ÷ static |").AppendLine("|---|---:|---:|---:|---:|---:|");

        void Case(string key, string what, CausalLM model, int padId, Func<IReadOnlyList<int>, string> decode, GenerateRequest request)
        {
            long useful = 0;
            double Rate(RunSpec.RolloutBatching batching)
            {
                var engine = RunFactory.InProcessEngine(model, padId, decode, 0, batching);
                try
                {
                    long tokens = 0;
                    var (t, _) = Measure.Time(() => tokens = engine.Generate(request).Sum(g => (long)g.Tokens.Length), warmup: 1, reps: reps);
                    if (useful != 0 && tokens != useful)
                        throw new InvalidOperationException($"rollout-batching {key}: static sampled {useful} tokens, continuous {tokens}: the engines disagree");
                    useful = tokens;
                    return tokens / t;
                }
                finally { (engine as IDisposable)?.Dispose(); }
            }
            double st = Rate(RunSpec.RolloutBatching.Static), co = Rate(RunSpec.RolloutBatching.Continuous);
            int sequences = request.Prompts.Count * request.SamplesPerPrompt;
            double mean = (double)useful / sequences;
            log.LogInformation("rollout-batching {What}: static {S:F0} tokens/s, continuous {C:F0} tokens/s ({R:F2}×), mean response {M:F1} tokens",
                what, st, co, co / st, mean);
            rows[key] = new JsonObject
            {
                ["model"] = what, ["sequences"] = sequences, ["max_new_tokens"] = request.MaxNewTokens, ["mean_response_tokens"] = mean,
                ["repetitions"] = reps, ["rollout_tokens_per_s_static"] = st, ["rollout_tokens_per_s_continuous"] = co, ["continuous_over_static"] = co / st,
            };
            table.AppendLine($"| {what} | {request.MaxNewTokens} | {F(mean, "0.0")} | {F(st, "0")} | {F(co, "0")} | {F(co / st, "0.00")}× |");
        }

        {
            // (a) the Countdown base model: the tiny model warm-started as `reproduce` builds it (shorter)
            var task = TaskBinding.Create(RunSpec.BuiltinTask.Countdown);
            using var baseModel = TinyModel.Create(task, 1).MoveTo(device, ScalarType.Float32);
            WarmStart.Run(new ModelPolicy(baseModel), rng => task.Example(rng, 0.7), task.Tokenizer.PadId,
                new WarmStartSettings(quick ? 100 : 300, 128, 1e-3, 0.9, 0.99, 1.0, 1), log);
            baseModel.eval();
            var prompts = task.Train.Take(8).Select(p => p.PromptIds).ToList();
            Case("countdown_base", "Countdown base (d128 × 2)", baseModel, task.Tokenizer.PadId, task.Tokenizer.Decode,
                new GenerateRequest(prompts, 8, 1.0, 1.0, 0, task.MaxNewTokens, 7) { StopTokenIds = task.StopTokenIds, StopStrings = task.StopStrings });

            // (b) a random d512 × 8 model, vocab 32,000; 1,000 stop ids: geometric lengths with mean ≈ 32
            using var big = new CausalLM(ModelConfig.Tiny(32000, 512, 8, 8, 8, 2048, 1024));
            big.InitWeights(1);
            big.MoveTo(device, ScalarType.Float32).eval();
            int maxNew = quick ? 128 : 256;
            var bigPrompts = Enumerable.Range(0, 8).Select(i => Enumerable.Range(0, 16).Select(j => 2000 + (i * 131 + j * 17) % 30000).ToArray()).ToList();
            Case("d512x8", "random d512 × 8, vocab 32,000", big, 0, ids => string.Empty,
                new GenerateRequest(bigPrompts, 8, 1.0, 1.0, 0, maxNew, 11) { StopTokenIds = Enumerable.Range(1, 1000).ToArray() });
        }
        table.AppendLine().AppendLine("Target (issue 19): continuous ≥ 1.5× static at 64 sequences of very different lengths. " +
            $"Medians of {reps} runs after one warm-up; both engines sample the same tokens for a seed.").AppendLine();
        report["rollout_batching"] = rows;
    }
}
