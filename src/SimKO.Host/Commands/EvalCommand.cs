using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Cli;
using SimKO.Host.Checkpoints;
using SimKO.Host.Evaluation;
using SimKO.Host.Experiments;
using SimKO.Host.Reporting;
using SimKO.Host.Rollout;
using SimKO.Host.Runtime;
using static TorchSharp.torch;

namespace SimKO.Host.Commands;

/// <summary>`simko eval`: pass@K (K = 1, 2, 4, … n), mean@n, maj@n; one row per temperature.</summary>
public static class EvalCommand
{
    public static int Run(EvalArgs.EvalOptions o, ILogger log)
    {
        try
        {
            var device = DeviceSelection.ParseDevice(o.Device);
            var task = BuiltinTask.Create(o.Task);
            using var model = HfFolder.LoadModel(o.Model, device, ScalarType.Float32);
            model.eval();
            var sampler = new KvCacheSampler(model, task.Tokenizer.PadId);
            var problems = task.Test.Take(Microsoft.FSharp.Core.FSharpOption<int>.get_IsSome(o.Problems) ? o.Problems.Value : task.Test.Count).ToList();
            int maxNew = Microsoft.FSharp.Core.FSharpOption<int>.get_IsSome(o.MaxNewTokens) ? o.MaxNewTokens.Value : task.MaxNewTokens;
            var rows = new List<ReportRow>();
            var json = new JsonObject { ["model"] = o.Model, ["task"] = task.Name, ["n"] = o.N, ["top_p"] = o.TopP, ["problems"] = problems.Count };
            var byTemp = new JsonObject();
            foreach (var t in o.Temperatures)
            {
                var s = new EvalSettings(o.N, t, o.TopP, 0, maxNew, o.Seed, System.Math.Max(1, 1024 / o.N));
                var r = Evaluator.Run(task.Name, problems, req => sampler.Generate(req with { StopTokenIds = [task.Tokenizer.EosId] }), s, log);
                rows.Add(new ReportRow(string.Create(CultureInfo.InvariantCulture, $"T = {t}"), [[r]]));
                var passes = new JsonObject();
                foreach (var k in SimKO.Math.PassAtK.ladder(o.N)) passes[$"{k}"] = r.PassAt(k);
                byTemp[t.ToString(CultureInfo.InvariantCulture)] = new JsonObject
                {
                    ["pass_at_k"] = passes, ["mean_at_n"] = r.MeanAtN, ["maj_at_n"] = r.MajAtN,
                    ["per_problem"] = new JsonArray(r.Problems.Select(p => (JsonNode?)new JsonObject { ["id"] = p.Id, ["n"] = p.N, ["c"] = p.C, ["maj"] = p.MajorityCorrect }).ToArray()),
                };
            }
            json["temperatures"] = byTemp;
            AtomicFile.WriteAllText(Path.Combine(o.Out, "eval.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            var md = PassAtKReport.Markdown(rows, $"pass@K of {o.Model} on {task.Name} ({problems.Count} problems, n = {o.N}, top-p {o.TopP})");
            AtomicFile.WriteAllText(Path.Combine(o.Out, "eval.md"), md);
            PassAtKReport.Plot(Path.Combine(o.Out, "pass_at_k.png"), rows, task.Name, $"pass@K on {task.Name}");
            Console.WriteLine(md);
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or FileNotFoundException or NotSupportedException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
