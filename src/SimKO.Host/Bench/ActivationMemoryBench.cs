using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Host.Diagnostics;
using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// `bench --only activation-memory` (issue 12): the activation peak of an update step's forward +
/// backward (peak RSS during it minus RSS before it) for the d512 × 8-layer model at 8,192 tokens
/// per micro-batch, with gradient checkpointing off and on. Targets: on/off ≤ 0.35, time ≤ 1.4×.
/// </summary>
public static class ActivationMemoryBench
{
    static string F(double x, string fmt) => x.ToString(fmt, CultureInfo.InvariantCulture);

    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        const int vocab = 64, d = 512, layers = 8, heads = 8;
        NativeHeap.TrackLiveMemory();                                          // peak RSS follows live tensors, not freed heap blocks
        int b = quick ? 4 : 16, t = 512;                                       // 16 × 512 = 8,192 tokens
        using var model = new CausalLM(ModelConfig.Tiny(vocab, d, layers, heads, heads, 4 * d, 1024));
        model.InitWeights(1);
        model.MoveTo(device, ScalarType.Float32);
        model.train();
        var gen = new Generator(5, device);
        var ids = randint(vocab, [b, t + 1], generator: gen, device: device).DetachFromDisposeScope();
        var mask = ones_like(ids).DetachFromDisposeScope();
        var rows = new JsonArray();
        var results = new List<(bool Checkpointing, long Peak, double Seconds)>();
        void Step()
        {
            using var scope = NewDisposeScope();
            var inputs = ids.narrow(1, 0, t);
            var logits = model.Forward(inputs, mask.narrow(1, 0, t), CausalLM.PositionsFromMask(mask.narrow(1, 0, t)));
            var loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), ids.narrow(1, 1, t).reshape(-1));
            loss.backward();
        }
        foreach (var checkpointing in new[] { false, true })
        {
            model.GradientCheckpointing = checkpointing;
            var (peak, seconds) = Measure.PeakAbove(Step);
            results.Add((checkpointing, peak, seconds));
            rows.Add(new JsonObject
            {
                ["model"] = $"d{d} x {layers} layers", ["layers"] = layers, ["tokens"] = b * t, ["checkpointing"] = checkpointing,
                ["activation_peak_bytes"] = peak, ["seconds"] = seconds,
            });
            log.LogInformation("activation memory, checkpointing {On}: {Peak:N0} bytes above the step's start, {Seconds:F2} s", checkpointing, peak, seconds);
        }
        foreach (var (_, p) in model.named_parameters()) p.grad?.Dispose();
        report["activation_memory"] = rows;
        var off = results[0]; var on = results[1];
        double memRatio = (double)on.Peak / System.Math.Max(1, off.Peak), timeRatio = on.Seconds / off.Seconds;
        table.AppendLine($"## Activation memory of forward + backward (d{d} × {layers} layers, {b * t:N0} tokens per micro-batch, fp32)").AppendLine();
        table.AppendLine("| gradient checkpointing | activation peak (RSS above start) | time |").AppendLine("|---|---:|---:|");
        foreach (var r in results)
            table.AppendLine($"| {(r.Checkpointing ? "on" : "off")} | {F(r.Peak / 1048576.0, "0")} MiB | {F(r.Seconds, "0.00")} s |");
        table.AppendLine().AppendLine($"on/off: memory {F(memRatio, "0.000")} (target ≤ 0.35), time {F(timeRatio, "0.00")}× (target ≤ 1.4×).").AppendLine();
        ids.Dispose(); mask.Dispose();
    }
}
