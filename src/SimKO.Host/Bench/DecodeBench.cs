using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Host.Model;
using SimKO.Host.Rollout;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// `bench --only decode` (issue 19 §3, decode speed at small batches): decode tokens/s of a random
/// Llama-shaped d512 × 8 model (vocab 32,000, MLP 2,048) with 16-token prompts and 128 new tokens (no
/// stop token: every row runs to the end), 2 threads, at B = 1, 16, 64 for the static
/// (<see cref="KvCacheSampler"/>) and the continuous (<see cref="ContinuousBatcher"/>) engine, best of 3
/// (B × 128 tokens ÷ the whole Generate call, prefill included). Then where one decode step's time goes
/// at B = 1 and 16 (<see cref="CausalLM.PhaseSeconds"/> for the forward's phases, Stopwatches around the
/// sampler and the next step's input tensors), in the static engine's step.
/// </summary>
public static class DecodeBench
{
    static string F(double x, string fmt) => x.ToString(fmt, CultureInfo.InvariantCulture);
    const int PromptTokens = 16, NewTokens = 128, Reps = 3;

    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        int threads = get_num_threads();
        set_num_threads(2);
        try { Measure(report, table, device, log); }
        finally { set_num_threads(threads); }
    }

    static void Measure(JsonObject report, StringBuilder table, Device device, ILogger log)
    {
        using var model = new CausalLM(ModelConfig.Tiny(32000, 512, 8, 8, 8, 2048, 1024));
        model.InitWeights(1);
        model.MoveTo(device, ScalarType.Float32).eval();
        List<int[]> Prompts(int b) => Enumerable.Range(0, b).Select(i => Enumerable.Range(0, PromptTokens).Select(j => 2000 + (i * 131 + j * 17) % 30000).ToArray()).ToList();
        var json = new JsonObject { ["model"] = "d512 × 8, vocab 32,000, MLP 2,048, fp32", ["prompt_tokens"] = PromptTokens, ["new_tokens"] = NewTokens,
                                    ["threads"] = 2, ["repetitions"] = Reps, ["load_average"] = LoadAverage() };
        table.AppendLine("## Decode (d512 × 8, vocab 32,000, 16-token prompts, 128 new tokens, 2 threads, best of 3)").AppendLine();
        table.AppendLine($"Load average at the start: {LoadAverage()}.").AppendLine();
        table.AppendLine("| B | static tokens/s | continuous tokens/s |").AppendLine("|---:|---:|---:|");
        foreach (var b in new[] { 1, 16, 64 })
        {
            var req = new GenerateRequest(Prompts(b), 1, 1.0, 1.0, 0, NewTokens, 5);
            double Best(IRolloutEngine engine)
            {
                engine.Generate(req);                                                               // warm-up
                double best = double.MaxValue;
                for (int r = 0; r < Reps; r++)
                {
                    var sw = Stopwatch.StartNew();
                    var n = engine.Generate(req).Sum(g => g.Tokens.Length);
                    best = System.Math.Min(best, sw.Elapsed.TotalSeconds);
                    if (n != b * NewTokens) throw new InvalidOperationException($"decode bench: {n} tokens for {b} × {NewTokens}");
                }
                return (double)b * NewTokens / best;
            }
            double st = Best(new KvCacheSampler(model, 0));
            double co;
            using (var batcher = new ContinuousBatcher(model, 0, System.Math.Max(b, 1))) co = Best(batcher);
            json[$"decode_tokens_per_s_b{b}_static"] = st;
            json[$"decode_tokens_per_s_b{b}_continuous"] = co;
            table.AppendLine($"| {b} | {F(st, "0")} | {F(co, "0")} |");
            log.LogInformation("decode B={B}: static {S:F0} tokens/s, continuous {C:F0} tokens/s", b, st, co);
        }
        table.AppendLine();
        foreach (var b in new[] { 1, 16 }) json[$"step_breakdown_b{b}"] = Breakdown(model, Prompts(b), device, table, log);
        json["load_average_end"] = LoadAverage();
        report["decode"] = json;
    }

    /// <summary>Milliseconds per decode step by phase, averaged over 127 steps of the static engine's loop.</summary>
    static JsonObject Breakdown(CausalLM model, List<int[]> prompts, Device device, StringBuilder table, ILogger log)
    {
        int b = prompts.Count, layers = model.Config.NumHiddenLayers;
        var filters = Enumerable.Repeat(new TokenFilter(1.0, 0, 1.0), b).ToList();
        var rngs = Enumerable.Range(0, b).Select(i => new SequenceRng(RolloutSeeds.Sequence(5, i, 0))).ToList();
        using var noGrad = no_grad();
        var (seq, mask) = LeftPadding.Pad(prompts, 0, device);
        using var cache = new KvCache(layers, PromptTokens + NewTokens);
        var phases = new double[layers + 2];
        double sample = 0, inputs = 0, scope = 0, total = 0;
        var sw = new Stopwatch();
        using (NewDisposeScope())
        {
            var logits = model.Forward(seq, mask, CausalLM.PositionsFromMask(mask), cache).select(1, -1);
            var (tok, _) = TokenSampler.Sample(logits, filters, rngs);
            var next = tensor(tok.Select(t => (long)t).ToArray(), [b, 1], device: device).DetachFromDisposeScope();
            mask = mask.DetachFromDisposeScope();
            model.PhaseSeconds = phases;
            try
            {
                for (int step = 1; step < NewTokens; step++)
                {
                    var all = Stopwatch.StartNew();
                    var s = NewDisposeScope();
                    var pos = mask.sum(1, keepdim: true) - 1;                                             // (B, 1)
                    logits = model.Forward(next, mask, pos, cache).select(1, -1);                        // (B, V)
                    sw.Restart();
                    (tok, _) = TokenSampler.Sample(logits, filters, rngs);
                    sample += sw.Elapsed.TotalSeconds; sw.Restart();
                    var newMask = cat([mask, ones([b, 1], ScalarType.Int64, device)], 1).DetachFromDisposeScope();
                    mask.Dispose(); mask = newMask;
                    next.Dispose();
                    next = tensor(tok.Select(t => (long)t).ToArray(), [b, 1], device: device).DetachFromDisposeScope();
                    inputs += sw.Elapsed.TotalSeconds; sw.Restart();
                    s.Dispose();
                    scope += sw.Elapsed.TotalSeconds;
                    total += all.Elapsed.TotalSeconds;
                }
            }
            finally { model.PhaseSeconds = null; next.Dispose(); mask.Dispose(); seq.Dispose(); }
        }
        int steps = NewTokens - 1;
        double Ms(double sec) => 1000 * sec / steps;
        double layerSum = phases.Skip(1).Take(layers).Sum();
        var o = new JsonObject
        {
            ["step_ms"] = Ms(total), ["embedding_rotary_mask_ms"] = Ms(phases[0]), ["layers_ms"] = Ms(layerSum),
            ["layer_ms"] = new JsonArray(phases.Skip(1).Take(layers).Select(x => (JsonNode?)Ms(x)).ToArray()),
            ["norm_lm_head_ms"] = Ms(phases[layers + 1]), ["sampling_ms"] = Ms(sample), ["next_inputs_ms"] = Ms(inputs), ["dispose_scope_ms"] = Ms(scope),
        };
        o["other_ms"] = Ms(total) - Ms(phases.Sum()) - Ms(sample) - Ms(inputs) - Ms(scope);
        table.AppendLine($"Decode step at B = {b} (static loop, mean of {steps} steps): {F(Ms(total), "0.00")} ms = embedding/rotary/mask {F(Ms(phases[0]), "0.00")}"
            + $" + 8 layers {F(Ms(layerSum), "0.00")} (each {string.Join(", ", phases.Skip(1).Take(layers).Select(x => F(Ms(x), "0.00")))}) + norm/LM head {F(Ms(phases[layers + 1]), "0.00")}"
            + $" + sampling {F(Ms(sample), "0.00")} + next inputs {F(Ms(inputs), "0.00")} + dispose scope {F(Ms(scope), "0.00")} ms.").AppendLine();
        log.LogInformation("decode step B={B}: {Json}", b, o.ToJsonString());
        return o;
    }

    static string LoadAverage()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "unknown"; }
    }
}
