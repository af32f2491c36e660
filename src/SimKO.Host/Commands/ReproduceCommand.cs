using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Cli;
using SimKO.Host.Checkpoints;
using SimKO.Host.Diagnostics;
using SimKO.Host.Evaluation;
using SimKO.Host.Model;
using SimKO.Host.Reporting;
using SimKO.Host.Rollout;
using SimKO.Host.Runs;
using SimKO.Host.Training;
using SimKO.Math;
using static TorchSharp.torch;

namespace SimKO.Host.Commands;

/// <summary>
/// The paper's experiment at CPU scale (issue 5): build a base model by supervised warm-start on a
/// built-in task with several correct answers per problem, train every method from that base with
/// the same seeds, evaluate base and trained models with pass@K, and write one report folder:
/// the pass@K table (Table 1 layout; Table 2's for the logic task), Λ^(1..3) over training (Figure 5), token-entropy histograms
/// (Figure 6), the exact configuration and every number as JSON.
/// </summary>
public static class ReproduceCommand
{
    public static int Run(RunSpec.ReproduceSpec o, ILogger log)
    {
        var clock = Stopwatch.StartNew();
        set_num_threads(System.Math.Max(1, Environment.ProcessorCount));
        var task = TaskBinding.Create(o.Task);
        int evalProblems = System.Math.Min(task.Test.Count, o.EvalProblems.Or(task.Test.Count));
        var basePath = Path.GetFullPath(Path.Combine(o.Out, "base"));
        // every run's training spec, checked before anything is trained
        var specs = new Dictionary<(string Key, int Seed), RunSpec.TrainSpec>();
        foreach (var v in o.Variants)
            for (int seed = 0; seed < o.Seeds; seed++)
            {
                var spec = TrainConfig.studyRun(o.Task, task.MaxNewTokens, o.Steps, RunDir(o, v, seed), seed, o.Quick, basePath, v);
                if (spec.IsError) { foreach (var e in spec.ErrorValue) Console.Error.WriteLine($"error: {v.Label}: {e}"); return 2; }
                specs[(v.Key, seed)] = spec.ResultValue;
            }
        Directory.CreateDirectory(o.Out);
        var config = new JsonObject
        {
            ["commit"] = Provenance.Commit(), ["command"] = Environment.CommandLine,
            ["task"] = task.Name, ["study"] = StudyName(o.Study), ["quick"] = o.Quick, ["seeds"] = o.Seeds, ["base_steps"] = o.BaseSteps,
            ["rl_steps"] = o.Steps, ["eval_samples"] = o.EvalSamples, ["eval_problems"] = evalProblems,
            ["eval_temperature"] = o.EvalTemperature, ["eval_top_p"] = 0.95,
            ["model"] = JsonNode.Parse(TinyModel.ConfigFor(task).ToJson()),
            ["variants"] = new JsonObject(o.Variants.Select(v => KeyValuePair.Create(v.Key, (JsonNode?)JsonNode.Parse(TrainConfig.toJson(specs[(v.Key, 0)]))))),
        };
        AtomicFile.WriteAllText(Path.Combine(o.Out, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        // 1. the base model
        {
            using var baseModel = TinyModel.Create(task, 1);
            log.LogInformation("base model: {Params:N0} parameters; supervised warm-start for {Steps} steps", baseModel.parameters().Sum(p => p.numel()), o.BaseSteps);
            WarmStart.Run(new ModelPolicy(baseModel), rng => task.Example(rng, 0.7), task.Tokenizer.PadId,
                new WarmStartSettings(o.BaseSteps, 128, 1e-3, 0.9, 0.99, 1.0, 1), log);
            HfFolder.Save(baseModel, task.Tokenizer, basePath);
        }
        var evalSettings = new EvalSettings(o.EvalSamples, o.EvalTemperature, 0.95, 0, task.MaxNewTokens, 2025, System.Math.Max(1, 1024 / o.EvalSamples))
            { StopTokenIds = task.StopTokenIds, StopStrings = task.StopStrings };
        var testSet = task.Test.Take(evalProblems).ToList();
        var rows = new List<ReportRow>();
        var lambdaSeries = new List<Series>();
        var entropies = new List<(string, double[])>();
        var runsJson = new JsonObject();

        var (baseResult, baseEntropy) = Evaluate("base", basePath, task, testSet, evalSettings, log);
        rows.Add(new ReportRow("Base", [[baseResult]]));
        entropies.Add(("Base", baseEntropy));

        // 2. each variant × seed from the same base
        foreach (var v in o.Variants)
        {
            var seedResults = new List<IReadOnlyList<BenchmarkResult>>();
            var perSeedLambdas = new List<double[][]>();
            double[]? variantEntropy = null;
            for (int seed = 0; seed < o.Seeds; seed++)
            {
                var runDir = RunDir(o, v, seed);
                if (Directory.Exists(runDir)) Directory.Delete(runDir, true);
                TrainResult trained;
                using (var run = RunFactory.Build(specs[(v.Key, seed)], log))
                {
                    log.LogInformation("training {Variant} seed {Seed} for {Steps} steps", v.Label, seed, o.Steps);
                    trained = run.Trainer.Run(resume: false);
                }
                var (result, entropy) = Evaluate($"{v.Label} seed {seed}", Path.Combine(runDir, "final"), task, testSet, evalSettings, log);
                seedResults.Add([result]);
                variantEntropy ??= entropy;
                perSeedLambdas.Add(Lambdas(trained.Series));
            }
            rows.Add(new ReportRow(v.Label, seedResults));
            entropies.Add((v.Label, variantEntropy!));
            for (int k = 0; k < 3; k++)
            {
                var mean = Enumerable.Range(0, o.Steps).Select(s => perSeedLambdas.Average(l => l[k][s])).ToArray();
                lambdaSeries.Add(new Series($"{v.Label} Λ({k + 1})", Enumerable.Range(1, o.Steps).Select(s => (double)s).ToArray(), Smooth(mean, System.Math.Max(1, o.Steps / 30))));
            }
            runsJson[v.Key] = new JsonObject
            {
                ["label"] = v.Label,
                ["pass_at_k"] = PassJson(seedResults),
                ["lambda_final"] = new JsonArray(Enumerable.Range(0, 3).Select(k => (JsonNode?)perSeedLambdas.Average(l => l[k][^1])).ToArray()),
            };
        }
        runsJson["base"] = new JsonObject { ["label"] = "Base", ["pass_at_k"] = PassJson([[baseResult]]) };

        // 3. the report
        var ks = PassAtKReport.Ks(rows);
        var rl = specs[(o.Variants[0].Key, 0)];
        PassAtKReport.Plot(Path.Combine(o.Out, "pass_at_k.png"), rows, task.Name, $"pass@K on {evalProblems} held-out {task.Name} problems (T = {o.EvalTemperature}, n = {o.EvalSamples})");
        Plot.Lines(Path.Combine(o.Out, "lambda.png"), "Λ(k): mean log-prob of the rank-k candidate over training (Figure 5)", "step", "Λ(k)", lambdaSeries);
        Plot.Histograms(Path.Combine(o.Out, "entropy.png"), "Token entropy of the final models on test samples (Figure 6)", "entropy (nats)", entropies);
        var md = new StringBuilder();
        var tiny = TinyModel.ConfigFor(task);
        md.AppendLine($"# SimKO reproduction at CPU scale — {task.Name}{(o.Study.IsComparison ? "" : $" ({StudyName(o.Study)})")}").AppendLine();
        md.AppendLine($"Base: {tiny.HiddenSize}-wide, {tiny.NumHiddenLayers}-layer decoder, supervised warm-start {o.BaseSteps} steps (70 % correct targets). " +
                      string.Create(CultureInfo.InvariantCulture, $"RL: {o.Steps} steps × {rl.PromptsPerStep} prompts × {rl.SamplesPerPrompt} samples, temperature {rl.Temperature}, lr {rl.Optimizer.LearningRate}. ") +
                      $"Evaluation: {evalProblems} held-out problems, n = {o.EvalSamples}, T = {o.EvalTemperature}, top-p 0.95. Seeds: {o.Seeds}. Wall time: {clock.Elapsed:mm\\:ss}.").AppendLine();
        md.AppendLine("| Run | method | settings |").AppendLine("|---|---|---|");
        foreach (var v in o.Variants)
            md.AppendLine($"| {v.Label} | {Methods.name(v.Method)} | {string.Join(", ", SettingsShown(v))} |");
        md.AppendLine().AppendLine($"Commit `{config["commit"]}`; every setting of every run is in `config.json`.").AppendLine();
        md.AppendLine(PassAtKReport.Markdown(rows, $"pass@K ({(task.Name == "order" ? "Table 2 layout: the logic task" : "Table 1 layout")}), {task.Name}"));
        if (!o.Study.IsComparison) md.AppendLine(Summary(rows, ks, o.Study)).AppendLine();
        if (o.Study is RunSpec.Study.Sweep sweep) SweepPlot(Path.Combine(o.Out, "sweep.png"), sweep.setting, o, rows, ks, task.Name);
        md.AppendLine("### Λ(k) at the last step (mean over seeds)").AppendLine();
        md.AppendLine("| Run | Λ(1) | Λ(2) | Λ(3) |").AppendLine("|---|---:|---:|---:|");
        foreach (var v in o.Variants)
        {
            var l = runsJson[v.Key]!["lambda_final"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
            md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {v.Label} | {l[0]:0.000} | {l[1]:0.000} | {l[2]:0.000} |"));
        }
        md.AppendLine().AppendLine($"Plots: `pass_at_k.png`, `lambda.png`, `entropy.png`{(o.Study.IsSweep ? ", `sweep.png`" : "")}. Per-run metrics: `runs/<run>-seed<k>/metrics.jsonl` (and TensorBoard files).");
        var paired = Paired(o.Variants, rows, ks);
        if (paired is not null) md.AppendLine().AppendLine(PairedDifference.Markdown("SimKO", "GRPO", paired));
        var byValue = o.Study.IsSweep ? SweepPaired(o.Variants, rows, ks) : [];
        if (byValue.Count > 0) md.AppendLine().AppendLine(SweepPairedMarkdown(byValue, ks[^1]));
        md.AppendLine().AppendLine(Verdict(o.Variants, rows, ks, paired));
        AtomicFile.WriteAllText(Path.Combine(o.Out, "report.md"), md.ToString());
        AtomicFile.WriteAllText(Path.Combine(o.Out, "results.json"), new JsonObject
            {
                ["commit"] = config["commit"]!.GetValue<string>(), ["ks"] = new JsonArray(ks.Select(k => (JsonNode?)k).ToArray()),
                ["runs"] = runsJson, ["wall_seconds"] = clock.Elapsed.TotalSeconds,
                ["paired"] = paired is null ? null : new JsonObject
                {
                    ["simko_minus_grpo"] = new JsonObject(paired.Select(x => KeyValuePair.Create($"{x.K}", (JsonNode?)x.D.ToJson()))),
                },
                ["paired_by_value"] = byValue.Count == 0 ? null : new JsonObject(byValue.Select(b => KeyValuePair.Create(b.Variant.Key, (JsonNode?)new JsonObject
                {
                    ["label"] = b.Variant.Label, ["against"] = b.Against.Key,
                    ["value"] = SweptValue(b.Variant) is double x ? JsonValue.Create(x) : JsonValue.Create(Settings.show(b.Variant.Swept!.Value.Item2)),
                    ["minus"] = new JsonObject(b.At.Select(a => KeyValuePair.Create($"{a.K}", (JsonNode?)a.D.ToJson()))),
                }))),
            }
            .ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine(md.ToString());
        log.LogInformation("report: {Dir} ({Elapsed:mm\\:ss})", o.Out, clock.Elapsed);
        return 0;
    }

    static string RunDir(RunSpec.ReproduceSpec o, RunSpec.Variant v, int seed) => Path.Combine(o.Out, "runs", $"{v.Key}-seed{seed}");

    static string StudyName(RunSpec.Study s) => s switch
    {
        RunSpec.Study.Sweep w => $"sweep of {w.setting}",
        _ when s.IsAblation => "ablation (Table 3)",
        _ => "comparison",
    };

    /// <summary>pass@1 and pass@max-K of every run, mean ± spread over seeds: the ablation's (Table 3) or the sweep's table.</summary>
    static string Summary(IReadOnlyList<ReportRow> rows, int[] ks, RunSpec.Study study)
    {
        var bench = PassAtKReport.Benchmarks(rows)[0];
        int kMax = ks[^1];
        string Cell(ReportRow r, int k)
        {
            var (m, sd) = PassAtKReport.MeanStd(PassAtKReport.Values(r, bench, k));
            return r.Seeds.Count > 1
                ? string.Create(CultureInfo.InvariantCulture, $"{100 * m:0.0} ± {100 * sd:0.0}")
                : string.Create(CultureInfo.InvariantCulture, $"{100 * m:0.0}");
        }
        var sb = new StringBuilder($"### {(study.IsAblation ? "Ablation (Table 3 layout)" : StudyName(study))}: pass@1 and pass@{kMax}, % (mean ± spread over seeds)\n\n");
        sb.AppendLine($"| Run | pass@1 | pass@{kMax} |").AppendLine("|---|---:|---:|");
        foreach (var r in rows) sb.AppendLine($"| {r.Name} | {Cell(r, 1)} | {Cell(r, kMax)} |");
        return sb.ToString();
    }

    /// <summary>Figure 7: pass@1 and pass@max-K against the swept value, one line per method.</summary>
    static void SweepPlot(string path, string setting, RunSpec.ReproduceSpec o, IReadOnlyList<ReportRow> rows, int[] ks, string benchmark)
    {
        int kMax = ks[^1];
        var series = new List<Series>();
        foreach (var group in o.Variants.Select((v, i) => (v, Row: rows[i + 1])).GroupBy(x => Methods.name(x.v.Method)))
        {
            var points = group.Select(x => (X: SweptValue(x.v), x.Row)).Where(p => p.X is not null).OrderBy(p => p.X).ToList();
            if (points.Count == 0) continue;
            foreach (var k in new[] { 1, kMax })
                series.Add(new Series($"{Methods.displayName(group.First().v.Method)} pass@{k}", points.Select(p => p.X!.Value).ToArray(),
                    points.Select(p => PassAtKReport.MeanStd(PassAtKReport.Values(p.Row, benchmark, k)).Mean).ToArray(),
                    points.Select(p => PassAtKReport.MeanStd(PassAtKReport.Values(p.Row, benchmark, k)).Std).ToArray()));
        }
        // a method sweep's unswept baselines (GRPO) as flat lines over the swept range
        var xs = o.Variants.Select(SweptValue).OfType<double>().ToArray();
        if (xs.Length > 0)
            foreach (var (v, row) in o.Variants.Select((v, i) => (v, rows[i + 1])).Where(x => x.v.Swept is null))
                foreach (var k in new[] { 1, kMax })
                {
                    var (m, sd) = PassAtKReport.MeanStd(PassAtKReport.Values(row, benchmark, k));
                    series.Add(new Series($"{v.Label} pass@{k} (not swept)", [xs.Min(), xs.Max()], [m, m], [sd, sd]));
                }
        if (series.Count > 0) Plot.Lines(path, $"pass@K against {setting} (Figure 7)", setting, "pass@K", series);
    }

    /// <summary>The swept value of a variant as a number (the plot's x), from its typed value; null for a non-numeric one.</summary>
    static double? SweptValue(RunSpec.Variant v) => v.Swept?.Value.Item2 switch
    {
        Settings.Value.Num n => n.Item,
        Settings.Value.Int i => i.Item,
        _ => null,
    };

    static (BenchmarkResult, double[]) Evaluate(string what, string modelDir, TaskBinding task, IReadOnlyList<EvalProblem> problems, EvalSettings s, ILogger log)
    {
        using var model = HfFolder.LoadModel(modelDir, CPU, ScalarType.Float32);
        model.eval();
        using var sampler = new ContinuousBatcher(model, task.Tokenizer.PadId, KvCacheSampler.DefaultMaxRows, decode: ids => task.Tokenizer.Decode(ids)) { SampledVocab = task.Tokenizer.VocabSize };
        var samples = new List<Generated>();
        var result = Evaluator.Run(task.Name, problems, sampler, s, log, samples, task.PrefetchTest);
        log.LogInformation("{What}: pass@1 {P1:F3}, pass@{N} {PN:F3}", what, result.PassAt(1), s.Samples, result.PassAt(s.Samples));
        // entropy at the response tokens of (up to) 2,000 of the evaluation samples
        var subset = samples.Where((_, i) => i % System.Math.Max(1, samples.Count / 2000) == 0)
            .Select(g => (problems[g.PromptIndex].PromptIds, g.Tokens)).Where(x => x.Tokens.Length > 0).ToList();
        var entropy = Evaluator.TokenEntropies(new ModelPolicy(model), subset, task.Tokenizer.PadId);
        return (result, entropy);
    }

    /// <summary>Λ(1..3) of every step, from the trainer's metric series (NaN where a step has none).</summary>
    static double[][] Lambdas(IReadOnlyList<IReadOnlyDictionary<string, double>> series) =>
        Enumerable.Range(1, 3).Select(k => series.Select(m => m.TryGetValue($"lambda_top{k}", out var x) ? x : double.NaN).ToArray()).ToArray();

    /// <summary>A variant's own method settings, and the training setting it sweeps (if it is not one of them).</summary>
    static IEnumerable<string> SettingsShown(RunSpec.Variant v)
    {
        var own = MethodSettings.ownValues(v.Method).ToList();
        foreach (var (name, value) in own) yield return $"{name} {value}";
        if (v.Swept is { } sw && own.All(kv => kv.Item1 != sw.Value.Item1)) yield return $"{sw.Value.Item1} {Settings.show(sw.Value.Item2)}";
    }

    static double[] Smooth(double[] xs, int window) =>
        xs.Select((_, i) => xs.Skip(System.Math.Max(0, i - window + 1)).Take(System.Math.Min(window, i + 1)).Average()).ToArray();

    static JsonObject PassJson(IReadOnlyList<IReadOnlyList<BenchmarkResult>> seeds)
    {
        var o = new JsonObject();
        var n = seeds.SelectMany(s => s).Min(b => b.N);
        foreach (var k in PassAtK.ladder(n))
            o[$"{k}"] = new JsonArray(seeds.Select(s => (JsonNode?)s.Average(b => b.PassAt(k))).ToArray());
        o["maj@n"] = new JsonArray(seeds.Select(s => (JsonNode?)s.Average(b => b.MajAtN)).ToArray());
        return o;
    }

    /// <summary>The row of the variant with this key (rows[0] is the base, rows[i + 1] variant i), or null.</summary>
    static ReportRow? RowOf(IReadOnlyList<RunSpec.Variant> variants, IReadOnlyList<ReportRow> rows, string key)
    {
        for (int i = 0; i < variants.Count; i++) if (variants[i].Key == key) return rows[i + 1];
        return null;
    }

    /// <summary>A sweep's paired comparison (Figure 7): each swept variant of a method other than GRPO
    /// against GRPO trained with the same seeds — the GRPO run with the same swept value (a training-setting
    /// sweep) or the unswept GRPO baseline (a method-setting sweep) — at pass@1 and pass@max-K.</summary>
    static List<(RunSpec.Variant Variant, RunSpec.Variant Against, List<(int K, PairedDifference D)> At)> SweepPaired(
        IReadOnlyList<RunSpec.Variant> variants, IReadOnlyList<ReportRow> rows, int[] ks)
    {
        var result = new List<(RunSpec.Variant, RunSpec.Variant, List<(int, PairedDifference)>)>();
        if (ks.Length == 0) return result;
        var bench = PassAtKReport.Benchmarks(rows)[0];
        bool IsGrpo(RunSpec.Variant v) => Methods.name(v.Method) == Methods.grpo.Name;
        for (int i = 0; i < variants.Count; i++)
        {
            var v = variants[i];
            if (IsGrpo(v) || v.Swept is null) continue;
            int j = Enumerable.Range(0, variants.Count).FirstOrDefault(j => IsGrpo(variants[j]) && Equals(variants[j].Swept, v.Swept), -1);
            if (j < 0) j = Enumerable.Range(0, variants.Count).FirstOrDefault(j => IsGrpo(variants[j]) && variants[j].Swept is null, -1);
            if (j < 0) continue;
            result.Add((v, variants[j], new[] { 1, ks[^1] }.Distinct()
                .Select(k => (k, PairedDifference.Of(PassAtKReport.Values(rows[i + 1], bench, k), PassAtKReport.Values(rows[j + 1], bench, k)))).ToList()));
        }
        return result;
    }

    /// <summary>The sweep's paired table, one row per swept value, and what it says in one sentence per K.</summary>
    static string SweepPairedMarkdown(List<(RunSpec.Variant Variant, RunSpec.Variant Against, List<(int K, PairedDifference D)> At)> byValue, int kMax)
    {
        var at = byValue[0].At;
        var sb = new StringBuilder($"### Each value − {byValue[0].Against.Label}, paired by seed (points; mean and 95 % t interval over seeds)\n\n");
        sb.Append("| Run | ").AppendJoin(" | ", at.Select(x => $"pass@{x.K}")).AppendLine(" |");
        sb.Append("|---|").AppendJoin("", at.Select(_ => "---:|")).AppendLine();
        foreach (var b in byValue) sb.Append($"| {b.Variant.Label} | ").AppendJoin(" | ", b.At.Select(x => x.D.Cell())).AppendLine(" |");
        int seeds = at[0].D.Seeds;
        sb.AppendLine();
        if (seeds < 3) sb.AppendLine($"Only {seeds} seed{(seeds == 1 ? "" : "s")}: {(seeds == 1 ? "no interval can be formed" : "the t intervals rest on too few seeds to say much")}; run with --seeds 3 or more.").AppendLine();
        foreach (var k in at.Select(x => x.K).Where(_ => seeds >= 2))
        {
            var ds = byValue.Select(b => b.At.First(x => x.K == k).D).ToList();
            sb.AppendLine($"- pass@{k}: the interval lies above zero for {ds.Count(d => d.Sign > 0)} of {ds.Count} values, below zero for {ds.Count(d => d.Sign < 0)}, and includes zero for {ds.Count(d => d.Sign == 0)}.");
        }
        return sb.ToString();
    }

    /// <summary>What the numbers say about the paper's claim, in plain words (no verdict is hard-coded).</summary>
    /// <summary>SimKO − GRPO paired by seed at pass@1 and pass@max-K, when both were trained.</summary>
    static List<(int K, PairedDifference D)>? Paired(IReadOnlyList<RunSpec.Variant> variants, IReadOnlyList<ReportRow> rows, int[] ks)
    {
        var grpo = RowOf(variants, rows, Methods.grpo.Name);
        var simko = RowOf(variants, rows, Methods.simko.Name);
        if (grpo is null || simko is null) return null;
        var bench = PassAtKReport.Benchmarks(rows)[0];
        return ks.Length == 0 ? null : new[] { 1, ks[^1] }.Distinct()
            .Select(k => (k, PairedDifference.Of(PassAtKReport.Values(simko, bench, k), PassAtKReport.Values(grpo, bench, k)))).ToList();
    }

    static string Verdict(IReadOnlyList<RunSpec.Variant> variants, IReadOnlyList<ReportRow> rows, int[] ks, List<(int K, PairedDifference D)>? paired)
    {
        var grpo = RowOf(variants, rows, Methods.grpo.Name);
        var simko = RowOf(variants, rows, Methods.simko.Name);
        var baseRow = rows[0];
        if (grpo is null || simko is null) return "";
        int kMax = ks[^1];
        var (g1, g1s) = PassAtKReport.MeanStd(PassAtKReport.Values(grpo, PassAtKReport.Benchmarks(rows)[0], 1));
        var (s1, s1s) = PassAtKReport.MeanStd(PassAtKReport.Values(simko, PassAtKReport.Benchmarks(rows)[0], 1));
        var (gk, gks) = PassAtKReport.MeanStd(PassAtKReport.Values(grpo, PassAtKReport.Benchmarks(rows)[0], kMax));
        var (sk, sks) = PassAtKReport.MeanStd(PassAtKReport.Values(simko, PassAtKReport.Benchmarks(rows)[0], kMax));
        var (bk, _) = PassAtKReport.MeanStd(PassAtKReport.Values(baseRow, PassAtKReport.Benchmarks(rows)[0], kMax));
        var (b1, _) = PassAtKReport.MeanStd(PassAtKReport.Values(baseRow, PassAtKReport.Benchmarks(rows)[0], 1));
        string Pct(double x) => (100 * x).ToString("0.0", CultureInfo.InvariantCulture);
        var sb = new StringBuilder("### What this run shows\n\n");
        sb.AppendLine($"- pass@1: base {Pct(b1)}, GRPO {Pct(g1)} ± {Pct(g1s)}, SimKO {Pct(s1)} ± {Pct(s1s)}.");
        sb.AppendLine($"- pass@{kMax}: base {Pct(bk)}, GRPO {Pct(gk)} ± {Pct(gks)}, SimKO {Pct(sk)} ± {Pct(sks)}.");
        // the verdict rests on the paired difference's interval, not on each method's spread alone
        var d = paired!.First(x => x.K == kMax).D;
        var few = d.Seeds < 3 ? $" (only {d.Seeds} seeds: too few for a firm interval; run with --seeds 3 or more)" : "";
        if (d.Seeds < 2)
            sb.AppendLine($"- SimKO − GRPO at pass@{kMax}: {Pct(d.Mean)} points from one seed; with no interval this is not evidence either way (run with --seeds 3 or more).");
        else sb.AppendLine(d.Sign switch
        {
            1 => $"- SimKO keeps pass@{kMax} above GRPO: the paired difference is {d.Cell()} points (95 % t interval over {d.Seeds} seeds), above zero{few}.",
            -1 => $"- SimKO's pass@{kMax} is below GRPO's: the paired difference is {d.Cell()} points (95 % t interval over {d.Seeds} seeds), below zero{few}.",
            _ => $"- SimKO − GRPO at pass@{kMax}: {d.Cell()} points (95 % t interval over {d.Seeds} seeds) includes zero: not a clear difference{few}.",
        });
        return sb.ToString();
    }
}
