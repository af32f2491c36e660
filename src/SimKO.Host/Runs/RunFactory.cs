using Microsoft.Extensions.Logging;
using SimKO.Cli;
using SimKO.Data.Tokenizers;
using SimKO.Host.Checkpoints;
using SimKO.Host.Model;
using SimKO.Host.Rollout;
using SimKO.Host.Runtime;
using SimKO.Host.Training;
using static TorchSharp.torch;

namespace SimKO.Host.Runs;

/// <summary>A training run, built: its task, the policy (and a frozen reference when the method
/// has a KL penalty), the parts the trainer uses, and the trainer. Disposing frees the models.</summary>
public sealed class Run : IDisposable
{
    public required RunSpec.TrainSpec Spec { get; init; }
    public required TaskBinding Task { get; init; }
    public required CausalLM Model { get; init; }
    public CausalLM? Reference { get; init; }
    public required TrainerParts Parts { get; init; }
    public required Trainer Trainer { get; init; }
    /// <summary>The rollout engine to stop with the run: the inference-server client, or the continuous batcher's thread.</summary>
    public IDisposable? RolloutClient { get; init; }

    public void Dispose()
    {
        RolloutClient?.Dispose();
        Model.Dispose();
        Reference?.Dispose();
        Parts.Collective.Dispose();
    }
}

/// <summary>
/// The one place a training run is assembled from its typed spec, for `train` and `reproduce`
/// alike: device and dtype, the task (built-in, preset or file) bound to a tokenizer, the policy
/// (a tiny model for a built-in task, or an HF folder), the rollout engine, and the trainer.
/// </summary>
public static class RunFactory
{
    public static Run Build(RunSpec.TrainSpec spec, ILogger log)
    {
        var device = DeviceSelection.Resolve(SimKO.Host.Collective.Collectives.DeviceOf(spec.Device));   // cuda:LOCAL_RANK under mpirun/srun
        var dtype = DeviceSelection.ScalarTypeOf(spec.DType);
        if (dtype == ScalarType.BFloat16 && device.type == TorchSharp.DeviceType.CPU)
            log.LogWarning("dtype bfloat16 on the CPU: correct but ~100x slower than float32 here (no hardware bf16); use it on CUDA");
        SharedSandbox.AllowUnisolated(spec.UnsafeNoSandbox);
        if (spec.UnsafeNoSandbox) log.LogWarning("unsafe_no_sandbox: policy-written code runs WITHOUT isolation (limits and timeouts only)");
        string? folder = spec.Model is RunSpec.ModelSource.HfFolder hf ? hf.Item : null;
        ITokenizer? tokenizer = null;
        ITokenizer Tokenizer() => tokenizer ??= HfFolder.LoadTokenizer(folder ?? throw new ArgumentException("model: the task needs an HF folder with a tokenizer"));
        var task = TaskBinding.ForTraining(spec.Task, Tokenizer, spec.Template, spec.MaxNewTokens, spec.SkipBadRows);
        TaskBinding.ReportSkipped([task], spec.Out, log);
        if (folder is not null && spec.Task.IsBuiltin) task.CheckTokenizer(Tokenizer(), folder);
        CausalLM Load() => folder is null ? TinyModel.Create(task, spec.Seed) : HfFolder.LoadModel(folder, device, dtype);
        var model = Load().MoveTo(device, dtype);
        model.GradientCheckpointing = spec.Memory.GradientCheckpointing;
        var lora = AttachLora(model, spec, log);
        CausalLM? reference = null;
        bool kl = SimKO.Math.Methods.common(spec.Method).Kl.Beta > 0;
        if (kl && lora is null)
        {
            reference = Load().MoveTo(device, dtype);
            reference.eval();
        }
        var parts = new TrainerParts
        {
            Collective = SimKO.Host.Collective.Collectives.Open(spec.Distributed.Collective, device, spec.Distributed.TimeoutSeconds),
            Policy = new ModelPolicy(model),
            Rollout = spec.Rollout.IsInProcess ? InProcessEngine(model, task.Tokenizer.PadId, task.Tokenizer.Decode, task.Tokenizer.VocabSize, spec.RolloutBatching) : NoEngine.Instance,
            StopTokenIds = task.StopTokenIds,
            StopStrings = task.StopStrings,
            PrefetchRewards = task.PrefetchTrain,
            Problems = task.Train,
            PadId = task.Tokenizer.PadId,
            WriteTensors = (s, t) => SafeTensors.Write(s, t),
            ReadTensors = SafeTensors.Read,
            ExportHf = lora is null
                ? dir => HfFolder.Save(model, task.Tokenizer, dir, dtype: DeviceSelection.ScalarTypeOf(spec.ExportDType))
                : dir => ExportLora(model, task, spec, dir, null),
            ExportHfWeights = lora is null
                ? (dir, weights) => HfFolder.Save(model, task.Tokenizer, dir, dtype: DeviceSelection.ScalarTypeOf(spec.ExportDType), weights: weights)
                : (dir, weights) => ExportLora(model, task, spec, dir, weights),
            // LoRA: the reference is the same model with its adapters off (no second copy of the weights)
            Reference = reference is not null ? new ModelPolicy(reference) : kl && lora is not null ? new AdaptersOffPolicy(model) : null,
        };
        log.LogInformation("{Method} on {Task}: {Params:N0} parameters on {Device} ({DType})", SimKO.Math.Methods.name(spec.Method), task.Name,
            model.parameters().Sum(p => p.numel()), device, RunSpec.dtypeName(spec.DType));
        if (lora is not null)
            log.LogInformation("LoRA r {Rank}, α {Alpha} on {Targets}: {Adapter:N0} trainable adapter parameters, base frozen", lora.Rank, lora.Alpha,
                string.Join(",", lora.TargetModules), model.LoraParameters().Sum(p => p.Param.numel()));
        ServerRolloutClient? client = null;
        if (spec.Rollout is RunSpec.RolloutSource.Server server)
            (parts, client) = ServerRollout.Attach(parts, ServerRollout.OptionsOf(server.Item), spec.Out, log);
        return new Run { Spec = spec, Task = task, Model = model, Reference = reference, Parts = parts, Trainer = new Trainer(TrainConfig.trainSettings(spec), parts, log),
                         RolloutClient = client ?? parts.Rollout as IDisposable };
    }

    /// <summary>The in-process rollout engine over the live policy (both modes sample the same tokens for a seed);
    /// ids ≥ <paramref name="sampledVocab"/> (those the tokenizer lacks) are never sampled.</summary>
    public static IRolloutEngine InProcessEngine(CausalLM model, int padId, Func<IReadOnlyList<int>, string> decode, int sampledVocab, RunSpec.RolloutBatching batching) =>
        batching.IsStatic
            ? new KvCacheSampler(model, padId, decode: decode) { SampledVocab = sampledVocab }
            : new ContinuousBatcher(model, padId, KvCacheSampler.DefaultMaxRows, decode: decode) { SampledVocab = sampledVocab };

    /// <summary>The rollout of a server run before the client is attached.</summary>
    sealed class NoEngine : IRolloutEngine
    {
        public static readonly NoEngine Instance = new();
        public IReadOnlyList<Generated> Generate(GenerateRequest request) => throw new InvalidOperationException("no rollout engine attached");
    }

    /// <summary>Attach the run's adapters (none when lora_rank = 0 and no adapter folder is given): a
    /// PEFT folder's (its config gives the settings; a lora_rank that disagrees is an error), or fresh ones.</summary>
    static LoraSettings? AttachLora(CausalLM model, RunSpec.TrainSpec spec, ILogger log)
    {
        var l = spec.Lora;
        if (Microsoft.FSharp.Core.FSharpOption<string>.get_IsSome(l.Adapter))
        {
            var folder = l.Adapter.Value;
            var fromFile = PeftAdapter.ReadSettings(folder);
            if (l.Rank > 0 && l.Rank != fromFile.Rank)
                throw new InvalidDataException($"{Path.Combine(folder, PeftAdapter.Config)}: r = {fromFile.Rank}, but lora_rank = {l.Rank}; leave lora_rank at 0 (taken from the adapter) or make them agree");
            var settings = PeftAdapter.Apply(model, folder, spec.Seed);
            log.LogInformation("continuing from the PEFT adapter {Folder} (r {Rank})", folder, settings.Rank);
            return settings;
        }
        if (l.Rank == 0) return null;
        var fresh = new LoraSettings(l.Rank, l.Alpha, l.TargetModules.ToList(), l.Dropout, l.UseRslora);
        model.AttachLora(fresh, SimKO.Host.Seeds.Mix(spec.Seed, 0x10DA, 0));
        return fresh;
    }

    /// <summary>final/ of a LoRA run: the merged HF folder (PEFT's merge_and_unload) and/or the adapter
    /// in final/adapter/ (from the optimizer's float32 masters when given).</summary>
    static void ExportLora(CausalLM model, TaskBinding task, RunSpec.TrainSpec spec, string dir, IReadOnlyDictionary<string, Tensor>? adapterMasters)
    {
        var type = DeviceSelection.ScalarTypeOf(spec.ExportDType);
        var baseName = spec.Model is RunSpec.ModelSource.HfFolder hf ? hf.Item : "tiny";
        var adapterDir = Path.Combine(dir, "adapter");
        if (!spec.Lora.Export.IsAdapterOnly)
        {
            using var scope = NewDisposeScope();
            HfFolder.Save(model, task.Tokenizer, dir, dtype: type, weights: model.MergedWeights());
        }
        else Directory.CreateDirectory(dir);
        if (!spec.Lora.Export.IsMerged) PeftAdapter.Save(model, adapterDir, baseName, type, adapterMasters);
    }
}

/// <summary>The small decoder of REPRODUCTION-NOTES for built-in tasks: d 128, 2 layers, 4 heads
/// (~0.5M parameters); the context holds the task's longest prompt and response (at least 64 positions).</summary>
public static class TinyModel
{
    public static ModelConfig ConfigFor(TaskBinding task) =>
        ModelConfig.Tiny(task.Tokenizer.VocabSize, 128, 2, 4, 4, 512, System.Math.Max(64, task.MaxSequenceLength ?? 64));

    /// <summary>A freshly initialised tiny model for a task.</summary>
    public static CausalLM Create(TaskBinding task, long seed)
    {
        var m = new CausalLM(ConfigFor(task));
        m.InitWeights(seed);
        return m;
    }
}
