using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Data.Tokenizers;
using SimKO.Host.Checkpoints;
using SimKO.Host.Diagnostics;
using SimKO.Host.Model;
using SimKO.Host.Training;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// `bench --only lora` (issue 22): on the d512 × 8-layer model, the memory an update step needs
/// above the weights (AdamW state, gradients and activations: peak RSS during optimizer creation +
/// forward + backward + step, minus RSS before) and the bytes and seconds of one weight export
/// (what a weight sync writes), LoRA r = 16 on all seven projections vs full fine-tuning.
/// Targets: update ≤ 0.6× full; sync bytes ≤ 2 % of the full export.
/// </summary>
public static class LoraBench
{
    static string F(double x, string fmt) => x.ToString(fmt, CultureInfo.InvariantCulture);

    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        const int vocab = 64, d = 512, layers = 8, heads = 8, rank = 16;
        NativeHeap.TrackLiveMemory();
        int b = quick ? 4 : 16, t = 512;
        var rows = new JsonArray();
        var results = new List<(string Mode, long Trainable, long Peak, double Seconds, long SyncBytes, double SyncSeconds)>();
        foreach (var lora in new[] { false, true })
        {
            using var model = new CausalLM(ModelConfig.Tiny(vocab, d, layers, heads, heads, 4 * d, 1024));
            model.InitWeights(1);
            model.MoveTo(device, ScalarType.Float32);
            if (lora) model.AttachLora(new LoraSettings(rank, 2 * rank, LoraSettings.AllProjections), 1);
            model.train();
            var policy = new ModelPolicy(model);
            var gen = new Generator(5, device);
            var ids = randint(vocab, [b, t + 1], generator: gen, device: device).DetachFromDisposeScope();
            var mask = ones_like(ids).DetachFromDisposeScope();
            void Step()
            {
                using var scope = NewDisposeScope();
                var opt = new AdamW(policy.NamedParameters.Select(p => (p.Name, (Tensor)p.Param)).ToList());
                var logits = model.Forward(ids.narrow(1, 0, t), mask.narrow(1, 0, t), CausalLM.PositionsFromMask(mask.narrow(1, 0, t)));
                nn.functional.cross_entropy(logits.reshape(-1, vocab), ids.narrow(1, 1, t).reshape(-1)).backward();
                opt.Step(1e-4);
                foreach (var (_, p) in policy.NamedParameters) { p.grad?.Dispose(); p.grad = null; }
                foreach (var s in opt.State().Values) s.Dispose();
            }
            var (peak, seconds) = Bench.Measure.PeakAbove(Step);
            // a weight sync's payload: the full HF weights, or the PEFT adapter (float32 both)
            var dir = Path.Combine(Path.GetTempPath(), $"simko-lora-bench-{Environment.ProcessId}");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            long bytes;
            if (lora)
            {
                PeftAdapter.Save(model, dir, "bench");
                bytes = new FileInfo(Path.Combine(dir, PeftAdapter.Weights)).Length;
            }
            else
            {
                HfFolder.Save(model, new CharTokenizer("abc"), dir);
                bytes = new FileInfo(Path.Combine(dir, HfFolder.Weights)).Length;
            }
            double syncSeconds = clock.Elapsed.TotalSeconds;
            Directory.Delete(dir, true);
            long trainable = policy.NamedParameters.Sum(p => p.Param.numel());
            var mode = lora ? $"LoRA r {rank}, all projections" : "full fine-tuning";
            results.Add((mode, trainable, peak, seconds, bytes, syncSeconds));
            rows.Add(new JsonObject
            {
                ["mode"] = mode, ["trainable_parameters"] = trainable, ["tokens"] = b * t, ["update_peak_bytes"] = peak,
                ["update_seconds"] = seconds, ["sync_bytes"] = bytes, ["sync_write_seconds"] = syncSeconds,
            });
            log.LogInformation("lora bench, {Mode}: update {Peak:N0} bytes above start, {Seconds:F2} s; sync {Bytes:N0} bytes", mode, peak, seconds, bytes);
            ids.Dispose(); mask.Dispose();
        }
        report["lora"] = rows;
        var full = results[0]; var ad = results[1];
        table.AppendLine($"## LoRA vs full fine-tuning (d{d} × {layers} layers, {b * t:N0} tokens, fp32)").AppendLine();
        table.AppendLine("| mode | trainable parameters | update peak (RSS above start) | update time | bytes per sync | write time |").AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (var r in results)
            table.AppendLine($"| {r.Mode} | {r.Trainable:N0} | {F(r.Peak / 1048576.0, "0")} MiB | {F(r.Seconds, "0.00")} s | {r.SyncBytes:N0} | {F(r.SyncSeconds, "0.000")} s |");
        table.AppendLine().AppendLine($"LoRA/full: update peak {F((double)ad.Peak / System.Math.Max(1, full.Peak), "0.000")}× (target ≤ 0.6×), sync bytes {F(100.0 * ad.SyncBytes / full.SyncBytes, "0.00")} % (target ≤ 2 %).").AppendLine();
    }
}
