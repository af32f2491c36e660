using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SimKO.Data.Tokenizers;
using SimKO.Host.Checkpoints;
using SimKO.Host.Diagnostics;
using SimKO.Host.Model;
using SimKO.Host.Rollout;
using SimKO.Host.Serving;
using SimKO.Host.Training;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// `bench --only lora` (issue 22): on the d512 × 8-layer model, LoRA r = 16 on all seven projections vs full
/// fine-tuning: the memory an update step needs above the weights (AdamW state, gradients and activations: peak RSS
/// during optimizer creation + forward + backward + step, minus RSS before), without and with gradient checkpointing;
/// the bytes one weight sync writes (the HF weights, or the PEFT adapter); and the seconds of one weight sync through
/// <c>simko serve</c> on loopback (<see cref="RolloutWeightSync.Sync"/>: export, load on the server — a reload of the
/// weights, or unload + load of the adapter — and the stale-weight probe), mean of 3 after one warm-up.
/// Targets: update ≤ 0.6× full; sync bytes ≤ 2 % of the full export.
/// </summary>
public static class LoraBench
{
    static string F(double x, string fmt) => x.ToString(fmt, CultureInfo.InvariantCulture);

    const int Vocab = 64, D = 512, Layers = 8, Heads = 8, Rank = 16;

    static CausalLM Model(bool lora, Device device)
    {
        var model = new CausalLM(ModelConfig.Tiny(Vocab, D, Layers, Heads, Heads, 4 * D, 1024));
        model.InitWeights(1);
        model.MoveTo(device, ScalarType.Float32);
        if (lora) model.AttachLora(new LoraSettings(Rank, 2 * Rank, LoraSettings.AllProjections), 1);
        return model;
    }

    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        NativeHeap.TrackLiveMemory();
        int b = quick ? 4 : 16, t = 512;
        var rows = new JsonArray();
        var results = new List<(string Mode, long Trainable, long Peak, double Seconds, long PeakCkpt, double SecondsCkpt, long SyncBytes, double SyncSeconds)>();
        foreach (var lora in new[] { false, true })
        {
            var gen = new Generator(5, device);
            var ids = randint(Vocab, [b, t + 1], generator: gen, device: device).DetachFromDisposeScope();
            var mask = ones_like(ids).DetachFromDisposeScope();
            (long Peak, double Seconds) Update(CausalLM model)
            {
                var policy = new ModelPolicy(model);
                void Step()
                {
                    using var scope = NewDisposeScope();
                    var opt = new AdamW(policy.NamedParameters.Select(p => (p.Name, (Tensor)p.Param)).ToList());
                    var logits = model.Forward(ids.narrow(1, 0, t), mask.narrow(1, 0, t), CausalLM.PositionsFromMask(mask.narrow(1, 0, t)));
                    nn.functional.cross_entropy(logits.reshape(-1, Vocab), ids.narrow(1, 1, t).reshape(-1)).backward();
                    opt.Step(1e-4);
                    foreach (var (_, p) in policy.NamedParameters) { p.grad?.Dispose(); p.grad = null; }
                    foreach (var s in opt.State().Values) s.Dispose();
                }
                return Bench.Measure.PeakAbove(Step);
            }
            using var model = Model(lora, device);
            model.train();
            var (peak, seconds) = Update(model);
            model.GradientCheckpointing = true;
            var (peakCkpt, secondsCkpt) = Update(model);
            model.GradientCheckpointing = false;
            ids.Dispose(); mask.Dispose();
            var (bytes, syncSeconds) = SyncThroughServe(model, lora, device);
            long trainable = new ModelPolicy(model).NamedParameters.Sum(p => p.Param.numel());
            var mode = lora ? $"LoRA r {Rank}, all projections" : "full fine-tuning";
            results.Add((mode, trainable, peak, seconds, peakCkpt, secondsCkpt, bytes, syncSeconds));
            rows.Add(new JsonObject
            {
                ["mode"] = mode, ["trainable_parameters"] = trainable, ["tokens"] = b * t, ["update_peak_bytes"] = peak,
                ["update_seconds"] = seconds, ["update_peak_bytes_checkpointing"] = peakCkpt, ["update_seconds_checkpointing"] = secondsCkpt,
                ["sync_bytes"] = bytes, ["sync_seconds_serve"] = syncSeconds,
            });
            log.LogInformation("lora bench, {Mode}: update {Peak:N0} bytes above start ({Ckpt:N0} with checkpointing), {Seconds:F2} s; sync {Bytes:N0} bytes, {Sync:F3} s through simko serve",
                mode, peak, peakCkpt, seconds, bytes, syncSeconds);
        }
        report["lora"] = rows;
        var full = results[0]; var ad = results[1];
        table.AppendLine($"## LoRA vs full fine-tuning (d{D} × {Layers} layers, {b * t:N0} tokens, fp32)").AppendLine();
        table.AppendLine("| mode | trainable parameters | update peak (RSS above start) | with gradient checkpointing | update time | bytes per sync | seconds per sync (simko serve) |")
             .AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
            table.AppendLine($"| {r.Mode} | {r.Trainable:N0} | {F(r.Peak / 1048576.0, "0")} MiB | {F(r.PeakCkpt / 1048576.0, "0")} MiB | {F(r.Seconds, "0.00")} s | {r.SyncBytes:N0} | {F(r.SyncSeconds, "0.000")} s |");
        table.AppendLine().AppendLine($"LoRA/full: update peak {F((double)ad.Peak / System.Math.Max(1, full.Peak), "0.000")}× ({F((double)ad.PeakCkpt / System.Math.Max(1, full.PeakCkpt), "0.000")}× with gradient checkpointing; target ≤ 0.6×), " +
            $"sync bytes {F(100.0 * ad.SyncBytes / full.SyncBytes, "0.00")} % (target ≤ 2 %), sync seconds {F(ad.SyncSeconds / System.Math.Max(1e-9, full.SyncSeconds), "0.000")}×.").AppendLine();
    }

    /// <summary>Bytes of one sync's payload and the mean seconds of 3 syncs (after a warm-up) of <paramref name="model"/>
    /// to <c>simko serve</c> of the same base on loopback: full weights or, for a LoRA model, its adapter.</summary>
    static (long Bytes, double Seconds) SyncThroughServe(CausalLM model, bool lora, Device device)
    {
        var tokenizer = new CharTokenizer(new string(Enumerable.Range(0, Vocab - CharTokenizer.Reserved).Select(i => (char)('0' + i)).ToArray()));
        using var served = Model(false, device);
        served.eval();
        var server = SimkoServer.StartAsync(served, tokenizer, ChatMarkup.FromTemplate(null, tokenizer), "bench",
            new ServeOptions("127.0.0.1", 0), NullLogger.Instance).GetAwaiter().GetResult();
        var dir = Path.Combine(Path.GetTempPath(), $"simko-lora-bench-{Environment.ProcessId}");
        try
        {
            using var client = new ServerRolloutClient(new RolloutClientOptions(server.Url, RolloutServer.Simko));
            model.eval();
            Action<string> export = lora ? d => PeftAdapter.Save(model, d, "bench") : d => HfFolder.Save(model, tokenizer, d);
            var sync = new RolloutWeightSync(client, dir, export, new ModelPolicy(model), [2, 3, 4, 5, 6, 7, 8, 9], 1e-3, NullLogger.Instance,
                lora ? SyncPayload.Adapter : SyncPayload.FullWeights);
            sync.Sync(0);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (long v = 1; v <= 3; v++) sync.Sync(v);
            double seconds = clock.Elapsed.TotalSeconds / 3;
            var last = Path.Combine(dir, RolloutWeightSync.Folder, "3");
            long bytes = new FileInfo(Path.Combine(last, lora ? PeftAdapter.Weights : HfFolder.Weights)).Length;
            return (bytes, seconds);
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
