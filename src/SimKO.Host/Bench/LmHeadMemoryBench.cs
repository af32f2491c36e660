using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.FSharp.Core;
using SimKO.Host.Diagnostics;
using SimKO.Math;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// `bench --only lm-head-memory` (issue 12): the LM head + SimKO loss, forward + backward, at
/// Qwen's V = 151,936 for 512 and 2,048 tokens, with the fused chunked head
/// (<see cref="LmHead.tokenStats"/>) and with whole logits. Peak = peak RSS during the step minus
/// RSS before it. Targets at 2,048 tokens: chunked peak ≤ 0.2× unchunked, chunked time ≤ 1.5×;
/// chunked 2,048-token peak ≤ 1.3× its 512-token peak (flat in T).
/// </summary>
public static class LmHeadMemoryBench
{
    /// <summary>Tokens per chunk of the chunked rows.</summary>
    public const int Chunk = 256;

    static string F(double x, string fmt) => x.ToString(fmt, CultureInfo.InvariantCulture);

    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        int vocab = quick ? 32_768 : 151_936, hidden = 512;
        NativeHeap.TrackLiveMemory();                                          // peak RSS follows live tensors, not freed heap blocks
        var objective = Methods.objective(Methods.Method.NewSimko(Methods.simkoDefaults));
        int k = Objective.topKNeeded(objective);
        var gen = new Generator(11, device);
        var weight = (randn([vocab, hidden], generator: gen, device: device) * 0.02).requires_grad_(true).DetachFromDisposeScope();
        var rows = new JsonArray();
        var results = new List<(int Tokens, bool Chunked, long Peak, double Seconds)>();
        foreach (var tokens in new[] { 512, 2048 })
        {
            const int b = 4;
            int t = tokens / b;
            using var data = NewDisposeScope();
            var h = (randn([b, t, hidden], generator: gen, device: device) * 0.5).requires_grad_(true);
            var ids = randint(vocab, [b, t], generator: gen, device: device);
            var mask = ones(b, t, device: device);
            var adv = tensor(new float[] { 1, -1, 1, -1 }, device: device);
            Tensor old;
            using (no_grad()) old = LmHead.tokenStats(Chunk, k, h, weight, ids).LogProbs - 0.01;
            foreach (var chunked in new[] { false, true })
            {
                void Step()
                {
                    using var scope = NewDisposeScope();
                    var stats = LmHead.tokenStats(chunked ? Chunk : 0, k, h, weight, ids);
                    var batch = new Objective.PolicyBatch(Objective.noLogits, ids, old, FSharpOption<Tensor>.None, mask, adv, Objective.selfContext(mask));
                    Objective.lossOfStats(objective, stats, batch).Loss.backward();
                    weight.grad!.zero_();
                    h.grad!.zero_();
                }
                var (peak, seconds) = Measure.PeakAbove(Step);
                results.Add((tokens, chunked, peak, seconds));
                rows.Add(new JsonObject { ["vocab"] = vocab, ["hidden"] = hidden, ["tokens"] = tokens, ["chunked"] = chunked, ["peak_bytes"] = peak, ["seconds"] = seconds });
                log.LogInformation("LM head {Tokens} tokens, chunked {Chunked}: {Peak:N0} bytes, {Seconds:F2} s", tokens, chunked, peak, seconds);
            }
        }
        weight.Dispose();
        report["lm_head_memory"] = rows;
        (long Peak, double Seconds) At(int tokens, bool chunked) { var r = results.First(x => x.Tokens == tokens && x.Chunked == chunked); return (r.Peak, r.Seconds); }
        var u = At(2048, false); var c = At(2048, true); var c512 = At(512, true);
        table.AppendLine($"## LM head + SimKO loss, forward + backward (V = {vocab:N0}, hidden {hidden}, chunks of {Chunk} tokens)").AppendLine();
        table.AppendLine("| tokens | head | peak (RSS above start) | time |").AppendLine("|---:|---|---:|---:|");
        foreach (var r in results)
            table.AppendLine($"| {r.Tokens} | {(r.Chunked ? "fused, chunked" : "whole logits")} | {F(r.Peak / 1048576.0, "0")} MiB | {F(r.Seconds, "0.000")} s |");
        table.AppendLine().AppendLine($"At 2,048 tokens: chunked/unchunked peak {F((double)c.Peak / System.Math.Max(1, u.Peak), "0.000")} (target ≤ 0.2), " +
            $"time {F(c.Seconds / u.Seconds, "0.00")}× (target ≤ 1.5×); chunked 2,048/512-token peak {F((double)c.Peak / System.Math.Max(1, c512.Peak), "0.00")} (target ≤ 1.3).").AppendLine();
    }
}
