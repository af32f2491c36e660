using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Math;
using TorchSharp;
using SimKO.Host.Batches;
using SimKO.Host.Rollout;
using SimKO.Host.Model;
using SimKO.Host.Collective;
using SimKO.Host.Checkpoints;
using static TorchSharp.torch;

using TrainSettings = SimKO.Math.TrainLoop.TrainSettings;

namespace SimKO.Host.Training;

/// <summary>A training problem: an id, its prompt ids, and a reward function of the response ids.</summary>
public sealed record TrainProblem(string Id, int[] PromptIds, Func<int[], double> Reward);

/// <summary>Everything a training run needs that is not the math: the policy and how to sample
/// from it, the problems, and how model/optimizer tensors are written and read.</summary>
public sealed record TrainerParts
{
    public required IPolicy Policy { get; init; }
    /// <summary>Where responses come from: the in-process sampler or an inference server.</summary>
    public required IRolloutEngine Rollout { get; init; }
    /// <summary>Token ids that end a response (the task's end token; the model's EOS ids).</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    /// <summary>Texts that end a response (code tasks: the end of the function).</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Judges a step's (problem index, response) pairs at once before their rewards are read
    /// (tasks that run code grade them in parallel); optional.</summary>
    public Action<IReadOnlyList<(int Problem, int[] Response)>>? PrefetchRewards { get; init; }
    /// <summary>Metrics of the rewards of the last prefetch (a reward function's <c>reward/&lt;key&gt;</c> means), added to the step's; optional.</summary>
    public Func<IReadOnlyDictionary<string, double>>? RewardMetrics { get; init; }
    public required IReadOnlyList<TrainProblem> Problems { get; init; }
    public required int PadId { get; init; }
    /// <summary>Write named tensors to a stream (safetensors).</summary>
    public required Action<Stream, IReadOnlyDictionary<string, Tensor>> WriteTensors { get; init; }
    /// <summary>Read named tensors from a file (safetensors), validated.</summary>
    public required Func<string, Dictionary<string, Tensor>> ReadTensors { get; init; }
    /// <summary>Export the policy as an HF folder (model, config, tokenizer).</summary>
    public required Action<string> ExportHf { get; init; }
    /// <summary>Export the policy as an HF folder from given weights (the optimizer's float32 masters,
    /// so an export in float32 of a bf16 run is not the bf16 rounding); when null, <see cref="ExportHf"/>.</summary>
    public Action<string, IReadOnlyDictionary<string, Tensor>>? ExportHfWeights { get; init; }
    /// <summary>Optional frozen reference policy for the KL penalty.</summary>
    public IPolicy? Reference { get; init; }
    /// <summary>Optional weight sync to an inference server (SPEC §8): called with the weights version
    /// (the number of steps done) once before the first step and after every step; returns the version
    /// the server now holds (logged as <c>rollout_weights_version</c>). Every rank calls it; with several ranks
    /// rank 0 loads the server's weights while the others wait (<see cref="RolloutWeightSync"/>).</summary>
    public Func<long, long>? SyncRolloutWeights { get; init; }
    /// <summary>The ranks of a data-parallel run (issue 21): each takes its share of every mini-batch's
    /// prompt groups; rank 0 writes metrics, checkpoints and the export.</summary>
    public ICollective Collective { get; init; } = new SingleProcess();
}

/// <summary>The outcome of a run: where it ended, the last step's metrics, and every step's metrics of
/// this call (the series metrics.jsonl holds, from the step it started at), so reports need not read them back.</summary>
public sealed record TrainResult(long StepsDone, IReadOnlyDictionary<string, double> LastMetrics, string FinalModel)
{
    public IReadOnlyList<IReadOnlyDictionary<string, double>> Series { get; init; } = [];
}

/// <summary>
/// The training loop (SPEC §2, §5–8) as one story: sample prompts → n responses each → rewards →
/// advantages → PPO updates (PolicyUpdate) → metrics → checkpoints. Every random choice of step s
/// comes from (seed, s), so a resumed run repeats exactly what an uninterrupted one does.
/// </summary>
public sealed class Trainer(TrainSettings settings, TrainerParts parts, ILogger log)
{
    public const string ModelFile = "model.safetensors", OptimizerFile = "optimizer.safetensors", StateFile = "trainer.json";

    readonly Objective.Objective _objective = Methods.objective(settings.Method);
    readonly string _configJson = settings.ConfigJson;

    /// <summary>Train from scratch, or from the newest complete checkpoint when <paramref name="resume"/>.</summary>
    public TrainResult Run(bool resume, long? stopAfter = null)
    {
        var store = new CheckpointStore(Path.Combine(settings.Out, "checkpoints"));
        var ranks = parts.Collective;
        var optimizer = new AdamW(parts.Policy.NamedParameters.Select(p => (p.Name, (Tensor)p.Param)).ToList(),
            settings.Optimizer.Beta1, settings.Optimizer.Beta2, settings.Optimizer.Eps, settings.Optimizer.WeightDecay, settings.Memory.OptimizerOffload,
            settings.Distributed.ShardOptimizer ? ranks : null);
        log.LogInformation("rank {Rank}/{Ranks}: optimizer state {Bytes} bytes ({Kind})", ranks.Rank, ranks.WorldSize, optimizer.StateBytes,
            optimizer.Shard is { } shard ? $"sharded: {shard.Size} of {shard.Total} elements" : "replicated");
        optimizer.Collective = ranks;
        bool writer = ranks.Rank == 0;
        long start = 0;
        int badSteps = 0;
        // every rank starts from rank 0's weights; a checkpoint, read by every rank, then replaces them
        if (ranks.WorldSize > 1) DataParallel.BroadcastWeights(ranks, optimizer);
        if (resume)
        {
            var (latest, damaged) = store.LatestIntact();
            foreach (var d in damaged) log.LogWarning("skipping a damaged checkpoint: {Problem}", d);
            if (latest is null && damaged.Count > 0)
                throw new InvalidDataException($"no intact checkpoint in {store.Directory} to resume from: {string.Join("; ", damaged)}");
            if (latest is null) log.LogInformation("no checkpoint in {Dir}: starting from step 0", store.Directory);
            else
            {
                if (damaged.Count > 0) log.LogWarning("resuming from the newest intact checkpoint {Checkpoint}", latest);
                (start, badSteps) = Restore(latest, optimizer);
            }
        }
        if (writer)
        {
            Directory.CreateDirectory(settings.Out);
            AtomicFile.WriteAllText(Path.Combine(settings.Out, "config.json"), _configJson);
        }
        using var sink = writer ? new MetricsSink(settings.Out, log, start, settings.Steps, settings.Tensorboard) : null;
        IReadOnlyDictionary<string, double> last = new Dictionary<string, double>();
        var series = new List<IReadOnlyDictionary<string, double>>();
        long end = stopAfter is long s ? System.Math.Min(settings.Steps, start + s) : settings.Steps;
        parts.SyncRolloutWeights?.Invoke(start);
        for (long step = start; step < end; step++)
        {
            ranks.Step = step;
            var metrics = Step(step, optimizer, out var skipped, out var problems);
            if (ranks.WorldSize > 1 && settings.Distributed.ChecksumEvery > 0 && (step + 1) % settings.Distributed.ChecksumEvery == 0)
                DataParallel.CheckWeights(ranks, optimizer, step);
            if (parts.SyncRolloutWeights is { } sync) metrics["rollout_weights_version"] = sync(step + 1);
            badSteps += skipped;
            foreach (var p in problems) log.LogWarning("step {Step}: skipped an update: {Problem}", step, p);
            metrics["skipped_updates_total"] = badSteps;
            metrics["optimizer_state_bytes"] = optimizer.StateBytes;   // this rank's (rank 0's in metrics.jsonl)
            sink?.Step(step, metrics, $"reward {metrics["reward_mean"]:F3} pass@1 {metrics["train_pass@1"]:F3} H {metrics.GetValueOrDefault("entropy"):F3}");
            last = metrics;
            series.Add(metrics);
            if (badSteps >= settings.MaxBadSteps)
            {
                Save(store, step + 1, optimizer, badSteps);
                throw new InvalidOperationException($"stopping: {badSteps} updates were skipped for a NaN/Inf loss or gradient (max_bad_steps = {settings.MaxBadSteps}); the last checkpoint is step {step + 1}");
            }
            if ((step + 1) % settings.CheckpointEvery == 0 || step + 1 == settings.Steps)
                Save(store, step + 1, optimizer, badSteps);             // every rank: a sharded optimizer gathers its state to rank 0
        }
        var final = Path.Combine(settings.Out, "final");
        if (end == settings.Steps)
        {
            var masters = parts.ExportHfWeights is not null && optimizer.HasMasters ? optimizer.MasterWeightsOn(0) : null;   // gathered when sharded: every rank
            if (writer)
            {
                if (parts.ExportHfWeights is { } export && masters is not null) export(final, masters);
                else parts.ExportHf(final);
            }
        }
        return new TrainResult(end, last, final) { Series = series };
    }

    /// <summary>Learning rate at a step: linear warm-up, then constant (the paper's schedule).</summary>
    public double LearningRate(long step) =>
        settings.Optimizer.WarmupSteps > 0 && step < settings.Optimizer.WarmupSteps ? settings.Optimizer.LearningRate * (step + 1) / settings.Optimizer.WarmupSteps : settings.Optimizer.LearningRate;

    /// <summary>Prompt indices of a step: consecutive slices of a per-epoch permutation seeded by (seed, epoch).</summary>
    public IReadOnlyList<int> PromptsOf(long step)
    {
        int n = parts.Problems.Count, k = settings.PromptsPerStep;
        var chosen = new List<int>(k);
        for (long pos = step * k; chosen.Count < k; pos++)
        {
            long epoch = pos / n;
            chosen.Add(Permutation(epoch)[(int)(pos % n)]);
        }
        return chosen;
    }

    readonly Dictionary<long, int[]> _permutations = new();

    int[] Permutation(long epoch)
    {
        if (_permutations.TryGetValue(epoch, out var p)) return p;
        var rng = new Random(unchecked((int)Seeds.Mix(settings.Seed, 0x5EED, epoch)));
        p = Enumerable.Range(0, parts.Problems.Count).ToArray();
        rng.Shuffle(p);
        return _permutations[epoch] = p;
    }

    Dictionary<string, double> Step(long step, AdamW optimizer, out int skipped, out List<string> problems)
    {
        using var scope = NewDisposeScope();
        var clock = Stopwatch.StartNew();
        var ranks = parts.Collective;
        var global = PromptsOf(step);
        int g = settings.SamplesPerPrompt;
        // this rank's share of every mini-batch: positions [m·P/M + r·P/(M·W), +P/(M·W)) of the step's prompts,
        // one request per share, so sample j of step position i draws from stream (seed, step, i, j) on any rank
        var shares = DataParallel.Shares(settings.PromptsPerStep, settings.MiniBatches, ranks.Rank, ranks.WorldSize);
        var promptIdx = shares.SelectMany(s => Enumerable.Range(s.Start, s.Count).Select(i => global[i])).ToList();
        var prompts = promptIdx.Select(i => parts.Problems[i].PromptIds).ToList();
        var generated = new List<Generated>();
        int local = 0;
        foreach (var share in shares)
        {
            var part = parts.Rollout.Generate(new GenerateRequest(prompts.GetRange(local, share.Count), g, settings.Temperature, settings.TopP, settings.TopK,
                settings.MaxNewTokens, Seeds.Mix(settings.Seed, 0x1207, step)) { StopTokenIds = parts.StopTokenIds, StopStrings = parts.StopStrings, PromptIndexBase = share.Start });
            generated.AddRange(part.Select(x => x with { PromptIndex = x.PromptIndex + local }));
            local += share.Count;
        }
        var rolloutSeconds = clock.Elapsed.TotalSeconds;
        var ordered = generated.OrderBy(x => x.PromptIndex).ToList();   // stable: groups stay consecutive
        if (ordered.Count != prompts.Count * g)
            throw new InvalidOperationException($"step {step}: the rollout engine returned {ordered.Count} responses, expected {prompts.Count} × {g}");
        parts.PrefetchRewards?.Invoke(ordered.Select(x => (promptIdx[x.PromptIndex], x.Tokens)).ToList());
        var samples = ordered.Select(x => new Sample(x.PromptIndex, prompts[x.PromptIndex], x.Tokens,
            parts.Problems[promptIdx[x.PromptIndex]].Reward(x.Tokens))).ToList();
        // rewards and advantages on the policy's device: the loss checks that every input is there
        var rewards = tensor(samples.Select(s => s.Reward).ToArray(), ScalarType.Float32, parts.Policy.Device);
        var advantages = Advantages.compute(_objective.Advantage, g, rewards);
        using var batch = PackedBatch.Pack(samples, parts.PadId, parts.Policy.Device);
        Tensor? refLogProbs = parts.Reference is { } r && _objective.Kl.Beta > 0 ? PolicyUpdate.LogProbs(r, batch, settings.MicroBatchSize, settings.Memory.MaxTokensPerMicroBatch, settings.Memory.LogitsChunkTokens) : null;
        clock.Restart();
        // SPEC §8: the trainer recomputes the old log-probs; the sampler's are kept only as a check.
        var oldLogProbs = PolicyUpdate.LogProbs(parts.Policy, batch, settings.MicroBatchSize, settings.Memory.MaxTokensPerMicroBatch, settings.Memory.LogitsChunkTokens);
        var samplerLogProbs = PackSamplerLogProbs(ordered, batch);
        var mismatch = ((oldLogProbs - samplerLogProbs).abs() * batch.ResponseMask).sum().item<float>() / System.Math.Max(1f, batch.ResponseMask.sum().item<float>());
        var update = PolicyUpdate.Run(_objective, parts.Policy, optimizer, LearningRate(step), batch, advantages, g,
            new UpdateSettings(settings.MiniBatches, settings.MicroBatchSize, settings.PpoEpochs, settings.Optimizer.GradClip,
                settings.Memory.MaxTokensPerMicroBatch, settings.Memory.LogitsChunkTokens, ranks), refLogProbs, oldLogProbs);
        var updateSeconds = clock.Elapsed.TotalSeconds;
        skipped = update.SkippedUpdates;
        problems = update.Problems;

        var metrics = new Dictionary<string, double>(update.Values);
        var correct = samples.Select(s => s.Reward > 0).ToArray();
        long responseTokens = samples.Sum(s => s.Response.Length);
        metrics["reward_mean"] = samples.Average(s => s.Reward);
        metrics["train_pass@1"] = correct.Average(c => c ? 1.0 : 0.0);
        metrics[$"train_pass@{g}"] = Enumerable.Range(0, prompts.Count).Average(p => correct.Skip(p * g).Take(g).Any(c => c) ? 1.0 : 0.0);
        metrics["response_length"] = samples.Average(s => s.Response.Length);
        metrics["rollout_tokens_per_s"] = responseTokens / System.Math.Max(1e-9, rolloutSeconds);
        // real tokens only: padding is not work done (padding_fraction says how much there was)
        metrics["update_tokens_per_s"] = update.RealTokens / System.Math.Max(1e-9, updateSeconds);
        metrics["lr"] = LearningRate(step);
        metrics["sampler_logprob_mismatch"] = mismatch;
        metrics["updates"] = update.Updates;
        metrics["peak_rss_mb"] = Diagnostics.ProcessMemory.Read().Peak / 1048576.0;
        if (parts.RewardMetrics?.Invoke() is { } rewardMetrics) foreach (var (k, v) in rewardMetrics) metrics[k] = v;
        if (ranks.WorldSize > 1) DataParallel.ReduceStepMetrics(ranks, metrics, samples, g, rolloutSeconds, updateSeconds, mismatch, responseTokens);
        return metrics;
    }

    /// <summary>The sampler's per-token log-probs laid out like the packed responses [N, R].</summary>
    static Tensor PackSamplerLogProbs(IReadOnlyList<Generated> responses, PackedBatch batch)
    {
        int r = batch.ResponseLength;
        var flat = new float[responses.Count * r];
        for (int i = 0; i < responses.Count; i++)
            Array.Copy(responses[i].SamplerLogProbs, 0, flat, i * r, System.Math.Min(r, responses[i].SamplerLogProbs.Length));
        return tensor(flat, [responses.Count, r], device: batch.ResponseMask.device);
    }

    /// <summary>Write a checkpoint from rank 0; called by every rank, since a sharded optimizer gathers its
    /// masters and moments there first (one checkpoint, the same files, whatever the number of ranks).</summary>
    void Save(CheckpointStore store, long stepsDone, AdamW optimizer, int badSteps)
    {
        var model = optimizer.MasterWeightsOn(0);                       // float32 whatever the compute dtype
        var optimizerState = optimizer.StateOn(0);
        if (parts.Collective.Rank != 0) return;
        var state = new JsonObject
        {
            ["steps_done"] = stepsDone,
            ["seed"] = settings.Seed,
            ["skipped_updates"] = badSteps,
            ["data_position"] = stepsDone * settings.PromptsPerStep,
            ["config"] = JsonNode.Parse(_configJson),
            ["world_size"] = parts.Collective.WorldSize,
            ["shard_optimizer"] = optimizer.Shard is not null,
        };
        store.Save(stepsDone,
        [
            (ModelFile, s => parts.WriteTensors(s, model!)),
            (OptimizerFile, s => parts.WriteTensors(s, optimizerState!)),
            (StateFile, s => JsonSerializer.Serialize(s, state, new JsonSerializerOptions { WriteIndented = true })),
        ]);
        store.Prune(settings.KeepCheckpoints);
        log.LogInformation("checkpoint: {Path}", Path.Combine(store.Directory, CheckpointStore.NameOf(stepsDone)));
    }

    /// <summary>Settings a resumed run may change: how long it runs and where and how it reports, not what it computes.</summary>
    static readonly HashSet<string> ResumableChanges =
        ["steps", "out", "checkpoint_every", "keep_checkpoints", "tensorboard", "rollout_url", "rollout_api_key", "rollout_concurrency", "rollout_timeout_s", "rollout_retries",
         "shard_optimizer"];

    /// <summary>Every setting (method settings as method.&lt;name&gt;) whose value differs between two config.json objects,
    /// as "name: checkpoint X, this run Y". A setting the checkpoint lacks (added after it was written, when
    /// the run behaved as its default) differs only when this run's value is not the default in
    /// <paramref name="defaults"/> (a config.json of the default settings).</summary>
    public static List<string> ConfigDifferences(JsonObject written, JsonObject now, JsonObject? defaults = null)
    {
        static IEnumerable<(string, string)> Flat(JsonObject o) =>
            o.SelectMany(kv => kv.Key == "method_settings" && kv.Value is JsonObject ms
                ? ms.Select(m => ("method." + m.Key, m.Value?.ToJsonString() ?? "null"))
                : [(kv.Key, kv.Value?.ToJsonString() ?? "null")]);
        // old checkpoints wrote every value as a string: compare "300" and 300 alike
        static string Norm(string json) => json.Length >= 2 && json[0] == '"' ? JsonNode.Parse(json)!.GetValue<string>() : json;
        var a = Flat(written).ToDictionary(x => x.Item1, x => Norm(x.Item2));
        var b = Flat(now).ToDictionary(x => x.Item1, x => Norm(x.Item2));
        var d = defaults is null ? [] : Flat(defaults).ToDictionary(x => x.Item1, x => Norm(x.Item2));
        foreach (var (k, v) in b)
            if (!a.ContainsKey(k) && d.TryGetValue(k, out var def) && def == v) a[k] = v;   // predates the setting, which keeps its default
        return a.Keys.Union(b.Keys).Where(k => !ResumableChanges.Contains(k))
            .Where(k => a.GetValueOrDefault(k, "(absent)") != b.GetValueOrDefault(k, "(absent)"))
            .Select(k => $"{k}: checkpoint {a.GetValueOrDefault(k, "(absent)")}, this run {b.GetValueOrDefault(k, "(absent)")}").ToList();
    }

    (long Step, int BadSteps) Restore(string checkpoint, AdamW optimizer)
    {
        var state = CheckpointStore.ReadTrainerState(Path.Combine(checkpoint, StateFile));
        var (steps, seed) = (state.StepsDone, state.Seed);
        if (seed != settings.Seed)
            throw new InvalidOperationException($"{checkpoint}: written with seed {seed}, this run has seed {settings.Seed}; resume with the same configuration");
        if (state.Config is { } written)
        {
            var differ = ConfigDifferences(written, JsonNode.Parse(_configJson)!.AsObject(), JsonNode.Parse(settings.DefaultConfigJson)!.AsObject());
            if (differ.Count > 0)
                throw new InvalidOperationException($"{checkpoint}: written with another run configuration ({string.Join("; ", differ)}); resume with the same settings, or start a new run");
        }
        optimizer.LoadMasterWeights(parts.ReadTensors(Path.Combine(checkpoint, ModelFile)), Path.Combine(checkpoint, ModelFile));
        optimizer.Load(parts.ReadTensors(Path.Combine(checkpoint, OptimizerFile)), Path.Combine(checkpoint, OptimizerFile));
        log.LogInformation("resumed from {Checkpoint} (step {Step})", checkpoint, steps);
        // the checkpoint holds the whole state; say when this run cuts it another way than the run that wrote it
        static string Layout(int? n, bool? sharded) => n is null ? "an unrecorded layout" : $"{(sharded == true ? "sharded" : "replicated")} over {n} rank{(n == 1 ? "" : "s")}";
        var (was, now) = (Layout(state.WorldSize, state.ShardOptimizer), Layout(parts.Collective.WorldSize, optimizer.Shard is not null));
        if (was != now && (state.ShardOptimizer == true || optimizer.Shard is not null))
            log.LogInformation("re-sharded the optimizer state of {Checkpoint}: from {Was} to {Now}", checkpoint, was, now);
        return (steps, state.SkippedUpdates);
    }
}
