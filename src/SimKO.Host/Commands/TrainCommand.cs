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
            if (!TaskBinding.IsBuiltin(cfg.Task) && cfg.Model == "tiny")
                throw new ArgumentException($"task '{cfg.Task}' is a dataset preset: set model to an HF folder (config.json, safetensors, tokenizer.json)");
            var task = TaskBinding.IsBuiltin(cfg.Task) ? TaskBinding.Create(cfg.Task)
                : TaskBinding.Preset(cfg.Task, HfFolder.LoadTokenizer(cfg.Model), cfg.PromptTemplate, cfg.MaxNewTokens);
            using var model = cfg.Model == "tiny" ? Tiny(task, cfg.Seed) : HfFolder.LoadModel(cfg.Model, device, dtype);
            if (cfg.Model != "tiny" && TaskBinding.IsBuiltin(cfg.Task))
            {
                var tok = HfFolder.LoadTokenizer(cfg.Model);
                if (tok.VocabSize != task.Tokenizer.VocabSize || !tok.Encode("1+2").SequenceEqual(task.Tokenizer.Encode("1+2")))
                    throw new ArgumentException($"{cfg.Model}: its tokenizer is not the {task.Name} task's (vocabulary {tok.VocabSize} vs {task.Tokenizer.VocabSize})");
            }
            model.MoveTo(device, dtype);
            var method = TrainConfig.method(cfg);
            CausalLM? reference = null;
            if (Methods_KlBeta(method) > 0)
                reference = cfg.Model == "tiny" ? Tiny(task, cfg.Seed).MoveTo(device, dtype) : HfFolder.LoadModel(cfg.Model, device, dtype);
            var parts = Reproduce.Parts(model, task);
            if (reference is not null) { reference.eval(); parts = WithReference(parts, new ModelPolicy(reference)); }
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

    static TrainerParts WithReference(TrainerParts p, IPolicy reference) => new()
    {
        Policy = p.Policy, Generate = p.Generate, Problems = p.Problems, PadId = p.PadId,
        WriteTensors = p.WriteTensors, ReadTensors = p.ReadTensors, ExportHf = p.ExportHf, Reference = reference,
    };
}
