using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Cli;
using SimKO.Host.Checkpoints;
using SimKO.Host.Evaluation;
using SimKO.Host.Model;
using SimKO.Host.Reporting;
using SimKO.Host.Rollout;
using SimKO.Host.Training;
using SimKO.Math;
using static TorchSharp.torch;

namespace SimKO.Host.Experiments;

/// <summary>
/// The paper's experiment at CPU scale (issue 5): build a base model by supervised warm-start on a
/// built-in task with several correct answers per problem, train every method from that base with
/// the same seeds, evaluate base and trained models with pass@K, and write one report folder:
/// the pass@K table (Table 1 layout; Table 2's for the logic task), Λ^(1..3) over training (Figure 5), token-entropy histograms
/// (Figure 6), the exact configuration and every number as JSON.
/// </summary>
public static class Reproduce
{
    public static int Run(ReproduceArgs.ReproduceOptions o, ILogger log)
    {
        var clock = Stopwatch.StartNew();
        set_num_threads(System.Math.Max(1, Environment.ProcessorCount));
        var task = TaskBinding.Create(o.Task);
        int baseSteps = FSharpInterop.Or(o.BaseSteps, o.Quick ? 300 : 1000);
        int steps = FSharpInterop.Or(o.Steps, o.Quick ? 24 : 300);
        int evalN = FSharpInterop.Or(o.EvalSamples, o.Quick ? 16 : 64);
        int evalProblems = System.Math.Min(task.Test.Count, FSharpInterop.Or(o.EvalProblems, o.Quick ? 64 : task.Test.Count));
        var methods = new List<(string Name, Methods.Method Method)>();
        foreach (var name in o.Methods)
        {
            var m = Methods.byName(name);
            if (m.IsError) { Console.Error.WriteLine($"error: {m.ErrorValue}"); return 2; }
            var method = m.ResultValue;
            if (method.IsSimko)
            {
                var overridden = Methods.withOverrides(Microsoft.FSharp.Collections.ListModule.OfSeq(new[]
                {
                    Tuple.Create("alpha", Methods.SettingValue.NewNumber(o.SimkoAlpha)),
                    Tuple.Create("lambda", Methods.SettingValue.NewNumber(o.SimkoLambda)),
                    Tuple.Create("k", Methods.SettingValue.NewNumber(o.SimkoK)),
                    Tuple.Create("q", Methods.SettingValue.NewNumber(o.SimkoQ)),
                }), method);
                if (overridden.IsError) { Console.Error.WriteLine($"error: simko: {string.Join("; ", overridden.ErrorValue)}"); return 2; }
                method = overridden.ResultValue;
            }
            var problems = Methods.validate(8, method);
            if (!problems.IsEmpty) { Console.Error.WriteLine($"error: {name}: {string.Join("; ", problems)}"); return 2; }
            methods.Add((name, method));
        }
        Directory.CreateDirectory(o.Out);
        var config = new JsonObject
        {
            ["task"] = task.Name, ["quick"] = o.Quick, ["methods"] = new JsonArray(o.Methods.Select(m => (JsonNode?)m).ToArray()),
            ["seeds"] = o.Seeds, ["base_steps"] = baseSteps, ["rl_steps"] = steps, ["eval_samples"] = evalN,
            ["eval_problems"] = evalProblems, ["eval_temperature"] = o.EvalTemperature, ["eval_top_p"] = 0.95,
            ["simko"] = new JsonObject { ["alpha"] = o.SimkoAlpha, ["lambda"] = o.SimkoLambda, ["k"] = o.SimkoK, ["q"] = o.SimkoQ },
            ["model"] = JsonNode.Parse(TinyConfig(task).ToJson()),
            ["rl"] = JsonNode.Parse(TrainConfig.toJson(RlConfig(task, steps, "(per run)", 0, o.Quick))),
        };
        AtomicFile.WriteAllText(Path.Combine(o.Out, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        // 1. the base model
        var basePath = Path.Combine(o.Out, "base");
        {
            using var baseModel = new CausalLM(TinyConfig(task));
            baseModel.InitWeights(1);
            log.LogInformation("base model: {Params:N0} parameters; supervised warm-start for {Steps} steps", baseModel.parameters().Sum(p => p.numel()), baseSteps);
            WarmStart.Run(new ModelPolicy(baseModel), rng => task.Example(rng, 0.7), task.Tokenizer.PadId,
                new WarmStartSettings(baseSteps, 128, 1e-3, 0.9, 0.99, 1.0, 1), log);
            HfFolder.Save(baseModel, task.Tokenizer, basePath);
        }
        var evalSettings = new EvalSettings(evalN, o.EvalTemperature, 0.95, 0, task.MaxNewTokens, 2025, System.Math.Max(1, 1024 / evalN));
        var testSet = task.Test.Take(evalProblems).ToList();
        var rows = new List<ReportRow>();
        var lambdaSeries = new List<Series>();
        var entropies = new List<(string, double[])>();
        var runsJson = new JsonObject();

        var (baseResult, baseEntropy) = Evaluate("base", basePath, task, testSet, evalSettings, log);
        rows.Add(new ReportRow("Base", [[baseResult]]));
        entropies.Add(("Base", baseEntropy));

        // 2. each method × seed from the same base
        foreach (var (name, method) in methods)
        {
            var seedResults = new List<IReadOnlyList<BenchmarkResult>>();
            var perSeedLambdas = new List<double[][]>();
            double[]? methodEntropy = null;
            for (int seed = 0; seed < o.Seeds; seed++)
            {
                var runDir = Path.Combine(o.Out, "runs", $"{name}-seed{seed}");
                if (Directory.Exists(runDir)) Directory.Delete(runDir, true);
                var cfg = RlConfig(task, steps, runDir, seed, o.Quick);
                using (var model = HfFolder.LoadModel(basePath, CPU, ScalarType.Float32))
                {
                    var trainer = new Trainer(method, Settings(cfg), Parts(model, task), log);
                    log.LogInformation("training {Method} seed {Seed} for {Steps} steps", name, seed, steps);
                    trainer.Run(resume: false);
                }
                var (result, entropy) = Evaluate($"{name} seed {seed}", Path.Combine(runDir, "final"), task, testSet, evalSettings, log);
                seedResults.Add([result]);
                methodEntropy ??= entropy;
                perSeedLambdas.Add(ReadLambdas(Path.Combine(runDir, "metrics.jsonl")));
            }
            rows.Add(new ReportRow(Display(name), seedResults));
            entropies.Add((Display(name), methodEntropy!));
            for (int k = 0; k < 3; k++)
            {
                var mean = Enumerable.Range(0, steps).Select(s => perSeedLambdas.Average(l => l[k][s])).ToArray();
                lambdaSeries.Add(new Series($"{Display(name)} Λ({k + 1})", Enumerable.Range(1, steps).Select(s => (double)s).ToArray(), Smooth(mean, System.Math.Max(1, steps / 30))));
            }
            runsJson[name] = new JsonObject
            {
                ["pass_at_k"] = PassJson(seedResults),
                ["lambda_final"] = new JsonArray(Enumerable.Range(0, 3).Select(k => (JsonNode?)perSeedLambdas.Average(l => l[k][^1])).ToArray()),
            };
        }
        runsJson["base"] = new JsonObject { ["pass_at_k"] = PassJson([[baseResult]]) };

        // 3. the report
        var ks = PassAtKReport.Ks(rows);
        PassAtKReport.Plot(Path.Combine(o.Out, "pass_at_k.png"), rows, task.Name, $"pass@K on {evalProblems} held-out {task.Name} problems (T = {o.EvalTemperature}, n = {evalN})");
        Plot.Lines(Path.Combine(o.Out, "lambda.png"), "Λ(k): mean log-prob of the rank-k candidate over training (Figure 5)", "step", "Λ(k)", lambdaSeries);
        Plot.Histograms(Path.Combine(o.Out, "entropy.png"), "Token entropy of the final models on test samples (Figure 6)", "entropy (nats)", entropies);
        var md = new StringBuilder();
        md.AppendLine($"# SimKO reproduction at CPU scale — {task.Name}").AppendLine();
        md.AppendLine($"Base: {TinyConfig(task).HiddenSize}-wide, {TinyConfig(task).NumHiddenLayers}-layer decoder, supervised warm-start {baseSteps} steps (70 % correct targets). " +
                      $"RL: {steps} steps × 16 prompts × 8 samples, temperature 1.0, lr 3e-4. Evaluation: {evalProblems} held-out problems, n = {evalN}, T = {o.EvalTemperature}, top-p 0.95. " +
                      $"SimKO: α = {o.SimkoAlpha}, λ = {o.SimkoLambda}, K = {o.SimkoK}, q = {o.SimkoQ}. Seeds: {o.Seeds}. Wall time: {clock.Elapsed:mm\\:ss}.").AppendLine();
        md.AppendLine(PassAtKReport.Markdown(rows, $"pass@K ({(task.Name == "order" ? "Table 2 layout: the logic task" : "Table 1 layout")}), {task.Name}"));
        md.AppendLine("### Λ(k) at the last step (mean over seeds)").AppendLine();
        md.AppendLine("| Method | Λ(1) | Λ(2) | Λ(3) |").AppendLine("|---|---:|---:|---:|");
        foreach (var (name, _) in methods)
        {
            var l = runsJson[name]!["lambda_final"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
            md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {Display(name)} | {l[0]:0.000} | {l[1]:0.000} | {l[2]:0.000} |"));
        }
        md.AppendLine().AppendLine("Plots: `pass_at_k.png`, `lambda.png`, `entropy.png`. Per-run metrics: `runs/<method>-seed<k>/metrics.jsonl` (and TensorBoard files).");
        md.AppendLine().AppendLine(Verdict(rows, ks));
        AtomicFile.WriteAllText(Path.Combine(o.Out, "report.md"), md.ToString());
        AtomicFile.WriteAllText(Path.Combine(o.Out, "results.json"), new JsonObject { ["ks"] = new JsonArray(ks.Select(k => (JsonNode?)k).ToArray()), ["runs"] = runsJson, ["wall_seconds"] = clock.Elapsed.TotalSeconds }
            .ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine(md.ToString());
        log.LogInformation("report: {Dir} ({Elapsed:mm\\:ss})", o.Out, clock.Elapsed);
        return 0;
    }

    static string Display(string method) => method switch
    {
        "grpo" => "GRPO", "simko" => "SimKO", "psr" => "PSR", "nsr" => "NSR", "w-reinforce" => "W-REINFORCE",
        "kl-cov" => "KL-Cov", "entropy-adv" => "Entropy-Adv", "forking" => "Forking", "passk" => "P@k T.", "dr-grpo" => "Dr. GRPO", _ => method,
    };

    /// <summary>The CPU model of REPRODUCTION-NOTES: d 128, 2 layers, 4 heads (~0.4M parameters); the
    /// context holds the task's longest prompt and response (at least 64 positions).</summary>
    public static ModelConfig TinyConfig(TaskBinding task) =>
        ModelConfig.Tiny(task.Tokenizer.VocabSize, 128, 2, 4, 4, 512, System.Math.Max(64, task.MaxSequenceLength ?? 64));

    static TrainConfig.TrainConfig RlConfig(TaskBinding task, int steps, string outDir, int seed, bool quick)
    {
        var pairs = new (string, string)[]
        {
            ("task", task.Name), ("steps", $"{steps}"), ("seed", $"{seed}"), ("out", outDir), ("max_new_tokens", $"{task.MaxNewTokens}"),
            ("checkpoint_every", $"{System.Math.Max(1, steps)}"), ("keep_checkpoints", "1"), ("tensorboard", quick ? "false" : "true"),
        };
        var r = TrainConfig.apply(Microsoft.FSharp.Collections.ListModule.OfSeq(pairs.Select(p => Tuple.Create(p.Item1, p.Item2))), TrainConfig.defaults);
        return r.IsOk ? r.ResultValue : throw new InvalidOperationException(string.Join("; ", r.ErrorValue));
    }

    public static TrainerSettings Settings(TrainConfig.TrainConfig c) => new(
        c.Steps, c.PromptsPerStep, c.SamplesPerPrompt, c.Temperature, c.TopP, c.TopK, c.MaxNewTokens,
        c.MiniBatches, c.MicroBatchSize, c.PpoEpochs, c.LearningRate, c.WarmupSteps, c.Beta1, c.Beta2, c.WeightDecay,
        c.GradClip, c.MaxBadSteps, c.Seed, c.Out, c.CheckpointEvery, c.KeepCheckpoints, c.Tensorboard, TrainConfig.toJson(c));

    public static TrainerParts Parts(CausalLM model, TaskBinding task)
    {
        var sampler = new KvCacheSampler(model, task.Tokenizer.PadId);
        return new TrainerParts
        {
            Policy = new ModelPolicy(model),
            Rollout = sampler,
            StopTokenIds = task.StopTokenIds,
            Problems = task.Train,
            PadId = task.Tokenizer.PadId,
            WriteTensors = (s, t) => SafeTensors.Write(s, t),
            ReadTensors = SafeTensors.Read,
            ExportHf = dir => HfFolder.Save(model, task.Tokenizer, dir),
        };
    }

    static (BenchmarkResult, double[]) Evaluate(string what, string modelDir, TaskBinding task, IReadOnlyList<EvalProblem> problems, EvalSettings s, ILogger log)
    {
        using var model = HfFolder.LoadModel(modelDir, CPU, ScalarType.Float32);
        model.eval();
        var sampler = new KvCacheSampler(model, task.Tokenizer.PadId);
        var samples = new List<Generated>();
        var result = Evaluator.Run(task.Name, problems, sampler, s with { StopTokenIds = task.StopTokenIds }, log, samples);
        log.LogInformation("{What}: pass@1 {P1:F3}, pass@{N} {PN:F3}", what, result.PassAt(1), s.Samples, result.PassAt(s.Samples));
        // entropy at the response tokens of (up to) 2,000 of the evaluation samples
        var subset = samples.Where((_, i) => i % System.Math.Max(1, samples.Count / 2000) == 0)
            .Select(g => (problems[g.PromptIndex].PromptIds, g.Tokens)).Where(x => x.Tokens.Length > 0).ToList();
        var entropy = Evaluator.TokenEntropies(new ModelPolicy(model), subset, task.Tokenizer.PadId);
        return (result, entropy);
    }

    static double[][] ReadLambdas(string metricsPath)
    {
        var rows = File.ReadLines(metricsPath).Select(l => JsonNode.Parse(l)!).ToList();
        return Enumerable.Range(1, 3).Select(k => rows.Select(r => r[$"lambda_top{k}"]?.GetValue<double>() ?? double.NaN).ToArray()).ToArray();
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

    /// <summary>What the numbers say about the paper's claim, in plain words (no verdict is hard-coded).</summary>
    static string Verdict(IReadOnlyList<ReportRow> rows, int[] ks)
    {
        var grpo = rows.FirstOrDefault(r => r.Name == "GRPO");
        var simko = rows.FirstOrDefault(r => r.Name == "SimKO");
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
        var diff = sk - gk;
        var spread = System.Math.Max(gks, sks);
        var seeds = System.Math.Min(grpo.Seeds.Count, simko.Seeds.Count);
        if (seeds < 2)
            sb.AppendLine($"- SimKO − GRPO at pass@{kMax}: {Pct(diff)} points from one seed each; with no seed spread to compare against this is not evidence either way (run with --seeds 3 or more).");
        else sb.AppendLine(diff > spread
            ? $"- SimKO keeps pass@{kMax} above GRPO by {Pct(diff)} points, more than the seed spread ({Pct(spread)})."
            : diff > 0
                ? $"- SimKO's pass@{kMax} is above GRPO's by {Pct(diff)} points, within the seed spread ({Pct(spread)}): not a clear difference."
                : $"- SimKO's pass@{kMax} is not above GRPO's here ({Pct(diff)} points).");
        return sb.ToString();
    }
}
