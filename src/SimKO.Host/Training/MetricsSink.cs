using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace SimKO.Host.Training;

/// <summary>
/// Where per-step metrics go: one JSON line per step (metrics.jsonl), TensorBoard event files,
/// and a console line through Microsoft.Extensions.Logging with progress and ETA.
/// </summary>
public sealed class MetricsSink : IDisposable
{
    readonly StreamWriter? _jsonl;
    readonly TorchSharp.Modules.SummaryWriter? _tensorboard;
    readonly ILogger _log;
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly long _totalSteps;
    readonly long _firstStep;

    public MetricsSink(string? runDirectory, ILogger log, long firstStep, long totalSteps, bool tensorboard = true)
    {
        _log = log;
        _firstStep = firstStep;
        _totalSteps = totalSteps;
        if (runDirectory is null) return;
        Directory.CreateDirectory(runDirectory);
        // Appending keeps the history of a resumed run; a resumed step writes its line again.
        _jsonl = new StreamWriter(new FileStream(Path.Combine(runDirectory, "metrics.jsonl"), FileMode.Append, FileAccess.Write, FileShare.Read));
        if (tensorboard) _tensorboard = torch.utils.tensorboard.SummaryWriter(Path.Combine(runDirectory, "tensorboard"), createRunName: false);
    }

    /// <summary>Record one step's metrics (name → value) and show progress.</summary>
    public void Step(long step, IReadOnlyDictionary<string, double> metrics, string? headline = null)
    {
        if (_jsonl is not null)
        {
            var line = new JsonObject { ["step"] = step, ["time_s"] = System.Math.Round(_clock.Elapsed.TotalSeconds, 3) };
            foreach (var (k, v) in metrics) line[k] = double.IsFinite(v) ? v : null;
            _jsonl.WriteLine(line.ToJsonString());
            _jsonl.Flush();
        }
        if (_tensorboard is not null)
            foreach (var (k, v) in metrics)
                if (double.IsFinite(v)) _tensorboard.add_scalar(k, (float)v, (int)step);
        var done = step - _firstStep + 1;
        var left = _totalSteps - step - 1;
        var perStep = _clock.Elapsed.TotalSeconds / System.Math.Max(1, done);
        var eta = TimeSpan.FromSeconds(perStep * System.Math.Max(0, left));
        _log.LogInformation("step {Step}/{Total} {Headline} ({PerStep:F2} s/step, ETA {Eta:hh\\:mm\\:ss})",
            step + 1, _totalSteps, headline ?? "", perStep, eta);
    }

    public void Dispose()
    {
        _jsonl?.Dispose();
        // SummaryWriter writes each event as it comes; it holds no open handle to close.
    }
}
