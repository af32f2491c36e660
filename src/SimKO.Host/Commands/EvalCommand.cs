using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Cli;
using SimKO.Host.Checkpoints;
using SimKO.Host.Evaluation;
using SimKO.Host.Reporting;
using SimKO.Host.Rollout;
using SimKO.Host.Runs;
using SimKO.Host.Runtime;
using static TorchSharp.torch;

namespace SimKO.Host.Commands;

/// <summary>`simko eval`: pass@K (K = 1, 2, 4, … n), mean@n, maj@n; one row per temperature.</summary>
public static class EvalCommand
{
    public static int Run(RunSpec.EvalSpec o, ILogger log)
    {
        try
        {
            var device = DeviceSelection.Resolve(o.Device);
            SharedSandbox.AllowUnisolated(o.UnsafeNoSandbox);
            using var model = HfFolder.LoadModel(o.Model, device, DeviceSelection.ScalarTypeOf(o.DType));
            if (Microsoft.FSharp.Core.FSharpOption<string>.get_IsSome(o.Adapter)) PeftAdapter.Apply(model, o.Adapter.Value);
            model.eval();
            SimKO.Data.Tokenizers.ITokenizer? tokenizer = null;
            SimKO.Data.Tokenizers.ITokenizer Tokenizer() => tokenizer ??= HfFolder.LoadTokenizer(o.Model);
            int maxNewTokens = o.MaxNewTokens.Or(4096);
            var tasks = new List<TaskBinding>();
            var reward = UserReward.Of(o.RewardFn, log);
            foreach (var t in o.Tasks)
            {
                var bound = TaskBinding.ForEval(t, Tokenizer, o.Template, maxNewTokens, skipBadRows: o.SkipBadRows, chat: () => SimKO.Data.Chat.ChatTemplate.FromFolder(o.Model), reward: reward);
                if (t.IsEvalBuiltin) foreach (var b in bound) b.CheckTokenizer(Tokenizer(), o.Model);
                tasks.AddRange(bound);
            }
            TaskBinding.ReportSkipped(tasks, o.Out, log);
            var padTokenizer = tasks[0].Tokenizer;
            using var sampler = new ContinuousBatcher(model, padTokenizer.PadId, KvCacheSampler.DefaultMaxRows, decode: ids => padTokenizer.Decode(ids)) { SampledVocab = padTokenizer.VocabSize };
            var rows = new List<ReportRow>();
            var json = new JsonObject { ["model"] = o.Model, ["tasks"] = new JsonArray(tasks.Select(t => (JsonNode?)t.Name).ToArray()), ["n"] = o.Samples, ["top_p"] = o.TopP };
            var byTemp = new JsonObject();
            foreach (var t in o.Temperatures)
            {
                var results = new List<BenchmarkResult>();
                var perTask = new JsonObject();
                foreach (var task in tasks)
                {
                    var problems = task.Test.Take(o.Problems.Or(task.Test.Count)).ToList();
                    int maxNew = o.MaxNewTokens.Or(task.MaxNewTokens);
                    var s = new EvalSettings(o.Samples, t, o.TopP, 0, maxNew, o.Seed, System.Math.Max(1, 1024 / o.Samples));
                    var r = Evaluator.Run(task.Name, problems, sampler, s with { StopTokenIds = task.StopTokenIds, StopStrings = task.StopStrings }, log, prefetch: task.PrefetchTest, rewardResults: task.TestRewardResults);
                    results.Add(r);
                    var passes = new JsonObject();
                    foreach (var k in SimKO.Math.PassAtK.ladder(o.Samples)) passes[$"{k}"] = r.PassAt(k);
                    var entry = perTask[task.Name] = new JsonObject
                    {
                        ["problems"] = problems.Count, ["pass_at_k"] = passes, ["mean_at_n"] = r.MeanAtN, ["maj_at_n"] = r.MajAtN,
                        ["per_problem"] = new JsonArray(r.Problems.Select(p => (JsonNode?)new JsonObject { ["id"] = p.Id, ["n"] = p.N, ["c"] = p.C, ["maj"] = p.MajorityCorrect }).ToArray()),
                    };
                    if (r.RewardMetrics is { } rm)
                    {
                        entry["reward_metrics"] = new JsonObject(rm.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
                        log.LogInformation("eval {Task} (T = {T}): {Metrics}", task.Name, t, string.Join(", ", rm.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value:G4}")));
                    }
                }
                rows.Add(new ReportRow(string.Create(CultureInfo.InvariantCulture, $"T = {t}"), [results]));
                byTemp[t.ToString(CultureInfo.InvariantCulture)] = perTask;
            }
            json["temperatures"] = byTemp;
            AtomicFile.WriteAllText(Path.Combine(o.Out, "eval.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            var md = PassAtKReport.Markdown(rows, $"pass@K of {o.Model} (n = {o.Samples}, top-p {o.TopP})");
            static bool IsBbh(string benchmark) => SimKO.Data.Logic.Bbh.IsBbh(benchmark);
            if (tasks.Any(t => IsBbh(t.Name)) && tasks.Any(t => !IsBbh(t.Name)))
            {
                // BBH is reported per task and as the unweighted mean over its tasks (the overall average mixes in the other sets)
                var bbhRows = rows.Select(r => new ReportRow(r.Name, r.Seeds.Select(s => (IReadOnlyList<BenchmarkResult>)s.Where(b => IsBbh(b.Benchmark)).ToList()).ToList())).ToList();
                md += "\n" + PassAtKReport.Markdown(bbhRows, "BBH: unweighted mean over its tasks", averageOnly: true);
            }
            AtomicFile.WriteAllText(Path.Combine(o.Out, "eval.md"), md);
            var plotOn = tasks.Count > 1 ? PassAtKReport.Average : tasks[0].Name;
            PassAtKReport.Plot(Path.Combine(o.Out, "pass_at_k.png"), rows, plotOn, $"pass@K ({plotOn})");
            Console.WriteLine(md);
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or FileNotFoundException or NotSupportedException or SimKO.Data.Math.DatasetException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
