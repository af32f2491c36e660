using Microsoft.Extensions.Logging;
using SimKO.Cli;
using SimKO.Host.Checkpoints;
using SimKO.Host.Experiments;
using SimKO.Host.Model;
using SimKO.Host.Runtime;
using SimKO.Host.Training;

namespace SimKO.Host.Commands;

/// <summary>`simko train`: one RL run (config file + overrides, validated up front).</summary>
public static class TrainCommand
{
    public static int Run(TrainArgs.TrainOptions options, ILogger log)
    {
        var resolved = TrainArgs.resolve(options);
        if (resolved.IsError)
        {
            foreach (var p in resolved.ErrorValue) Console.Error.WriteLine($"error: {p}");
            Console.Error.WriteLine("(see: simko train --help)");
            return 2;
        }
        var cfg = resolved.ResultValue;
        try
        {
            var device = DeviceSelection.ParseDevice(cfg.Device);
            var dtype = DeviceSelection.ParseDType(cfg.DType, device);
            var dataPath = Microsoft.FSharp.Core.OptionModule.ToObj(cfg.DataPath);
            bool builtin = dataPath is null && TaskBinding.IsBuiltin(cfg.Task);
            if (!builtin && cfg.Model == "tiny")
                throw new ArgumentException($"{dataPath ?? $"task '{cfg.Task}'"} is a math dataset: set model to an HF folder (config.json, safetensors, tokenizer.json)");
            TaskBinding task;
            if (builtin) task = TaskBinding.Create(cfg.Task);
            else if (dataPath is null) task = TaskBinding.Preset(cfg.Task, HfFolder.LoadTokenizer(cfg.Model), cfg.PromptTemplate, cfg.MaxNewTokens, skipBadRows: cfg.SkipBadRows);
            else
            {
                var from = cfg.AnswerFrom switch { "boxed" => SimKO.Data.Math.AnswerFrom.BoxedInSolution, "hashes" => SimKO.Data.Math.AnswerFrom.AfterHashes, _ => SimKO.Data.Math.AnswerFrom.Answer };
                var loaded = SimKO.Data.Math.Datasets.LoadFile(dataPath, new SimKO.Data.Math.FieldOptions(cfg.QuestionField.Split('|'), cfg.AnswerField, from), cfg.SkipBadRows);
                task = TaskBinding.Math(Path.GetFileNameWithoutExtension(dataPath), loaded.Problems, loaded.Problems, HfFolder.LoadTokenizer(cfg.Model), cfg.PromptTemplate, cfg.MaxNewTokens)
                    with { SkippedRows = loaded.Skipped };
            }
            TaskBinding.ReportSkipped([task], cfg.Out, log);
            using var model = cfg.Model == "tiny" ? Tiny(task, cfg.Seed) : HfFolder.LoadModel(cfg.Model, device, dtype);
            if (cfg.Model != "tiny" && TaskBinding.IsBuiltin(cfg.Task)) task.CheckTokenizer(HfFolder.LoadTokenizer(cfg.Model), cfg.Model);
            model.MoveTo(device, dtype);
            var method = TrainConfig.method(cfg);
            CausalLM? reference = null;
            if (Methods_KlBeta(method) > 0)
                reference = cfg.Model == "tiny" ? Tiny(task, cfg.Seed).MoveTo(device, dtype) : HfFolder.LoadModel(cfg.Model, device, dtype);
            var parts = Reproduce.Parts(model, task);
            if (reference is not null) { reference.eval(); parts = parts with { Reference = new ModelPolicy(reference) }; }
            log.LogInformation("training {Method} on {Task}: {Params:N0} parameters on {Device}", cfg.Method, task.Name,
                model.parameters().Sum(p => p.numel()), device);
            var result = new Trainer(method, Reproduce.Settings(cfg), parts, log).Run(options.Resume);
            log.LogInformation("done: {Steps} steps; final model in {Final}", result.StepsDone, result.FinalModel);
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or FileNotFoundException or InvalidOperationException or NotSupportedException or SimKO.Data.Math.DatasetException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    static double Methods_KlBeta(SimKO.Math.Methods.Method m) => SimKO.Math.Methods.common(m).Kl.Beta;

    static CausalLM Tiny(TaskBinding task, int seed)
    {
        var m = new CausalLM(Reproduce.TinyConfig(task));
        m.InitWeights(seed);
        return m;
    }
}
