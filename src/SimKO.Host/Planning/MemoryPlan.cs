using SimKO.Cli;
using SimKO.Host.Model;
using SimKO.Host.Rollout;

namespace SimKO.Host.Planning;

/// <summary>What a plan needs to know of a run (from its typed spec; see <see cref="MemoryPlan.SettingsOf"/>).</summary>
/// <param name="ComputeBytes">bytes per element of the compute dtype (4 float32, 2 bfloat16)</param>
/// <param name="OptimizerOffload">master weights, gradient sums and AdamW moments live in host memory</param>
/// <param name="GradientCheckpointing">only decoder-layer inputs are kept for backward</param>
/// <param name="LogitsChunkTokens">tokens per LM-head chunk (0: the whole micro-batch at once)</param>
/// <param name="MicroBatchTokens">tokens of one micro-batch (prompt + response positions)</param>
/// <param name="ResponseTokens">response tokens of one micro-batch (the LM head sees only these)</param>
/// <param name="RolloutRows">sequences sampled together by the in-process sampler (0: a rollout server)</param>
/// <param name="SequenceTokens">longest prompt + response</param>
/// <param name="ReferenceModel">a frozen reference copy is held (KL penalty; never with LoRA, whose reference is the base)</param>
/// <param name="LoraRank">LoRA rank r (0: full fine-tuning)</param>
/// <param name="LoraTargets">projections with an adapter (null: all seven)</param>
/// <param name="StatisticsTokens">response positions of one mini-batch (rows × response length) whose entropies
/// the batch-gate statistics pass (forking, gate=batch) holds during the update; 0: no such pass</param>
/// <param name="WorldSize">data-parallel ranks (issue 21); every figure is per rank</param>
/// <param name="ShardOptimizer">ZeRO-2: each rank keeps the fp32 master weights, gradient sums and AdamW moments of ⌈p/N⌉ parameters</param>
/// <param name="StatisticsGatherBytes">the mini-batch context gathered from every rank (forking's entropies, KL-Cov's old
/// log-probs: DataParallel.GlobalContext), held during the statistics pass; 0 with one rank or neither</param>
public sealed record PlanSettings(int ComputeBytes, bool OptimizerOffload, bool GradientCheckpointing, long LogitsChunkTokens,
    long MicroBatchTokens, long ResponseTokens, long RolloutRows, long SequenceTokens, bool ReferenceModel,
    int LoraRank = 0, IReadOnlyList<string>? LoraTargets = null, long StatisticsTokens = 0,
    int WorldSize = 1, bool ShardOptimizer = false, long StatisticsGatherBytes = 0);

/// <summary>Bytes of each part of a run's GPU memory.</summary>
public sealed record MemoryComponents(long Weights, long MasterWeights, long Gradients, long OptimizerState, long Activations, long Logits, long KvCache,
    long Statistics = 0, long Collective = 0)
{
    public long Total => Weights + MasterWeights + Gradients + OptimizerState + Activations + Logits + KvCache + Statistics + Collective;
}

/// <summary>A run's memory: parameters, the GPU components, what is held in host memory instead,
/// both activation figures, and the verdict.</summary>
public sealed record MemoryPlanResult(long Parameters, MemoryComponents Components, long HostBytes,
    long ActivationsWithCheckpointing, long ActivationsWithoutCheckpointing, long GpuMemoryBytes, IReadOnlyList<string> Advice)
{
    /// <summary>LoRA adapter parameters, the only trained ones (0: full fine-tuning trains all).</summary>
    public long AdapterParameters { get; init; }
    /// <summary>Data-parallel ranks; every figure is per rank.</summary>
    public int WorldSize { get; init; } = 1;
    /// <summary>Whether the optimizer state is sharded over the ranks (ZeRO-2).</summary>
    public bool ShardOptimizer { get; init; }
    public long TrainableParameters => AdapterParameters > 0 ? AdapterParameters : Parameters;

    public long TotalBytes => Components.Total;
    public bool Fits => TotalBytes <= GpuMemoryBytes;
}

/// <summary>
/// The memory of a training run, computed from config.json and the run's settings before a GPU is
/// touched (issue 12; HF accelerate's estimate-memory is the anchor for the weights, which knows
/// nothing of RL). Every figure is a formula over the model's shapes, written out below:
/// <list type="bullet">
/// <item>parameters: embedding V·d; per layer q (d·h·hd), k and v (d·kv·hd each) with their biases
///   when attention_bias (Qwen2), o (h·hd·d), MLP 3·d·I, two norms 2·d; final norm d; lm_head V·d
///   unless tied;</item>
/// <item>weights: parameters × compute bytes (+ the same again for a frozen reference);</item>
/// <item>master_weights: fp32 copy, parameters × 4, only when the compute dtype is not float32;</item>
/// <item>gradients: the compute-dtype gradients of backward (parameters × compute bytes) and the fp32
///   sums across micro-batches (parameters × 4; in float32 the gradients are the sums);</item>
/// <item>optimizer_state: AdamW's two fp32 moments, parameters × 8;</item>
/// <item>with optimizer_offload, an fp32 master copy, the fp32 gradient sums and the moments are host
///   memory (<see cref="MemoryPlanResult.HostBytes"/>) and count 0 on the GPU;</item>
/// <item>activations, per token of a micro-batch: a layer keeps (9·d + 3·kv·hd + 4·I) compute-dtype
///   values (norm outputs, q/k/v and their rotated and GQA-expanded copies, attention output, the
///   four MLP intermediates, residual sums) and 4·d float32 values (the RMSNorms compute in
///   float32). Without checkpointing every layer's are kept; with it, each layer's input
///   (d values) plus one layer's set during its recomputation. Attention is counted without a T×T
///   matrix (flash / memory-efficient SDPA on CUDA);</item>
/// <item>logits: the LM head chunk's float32 logits, log-softmax and softmax (3 × chunk × V × 4)
///   plus the fused head's float32 ∂W accumulator (V·d·4); unchunked: the whole micro-batch's
///   response tokens take the chunk's place and autograd keeps logits, log-softmax and gradient
///   (4 × tokens × V × 4) with no separate accumulator;</item>
/// <item>LoRA (lora_rank r > 0, issue 22): the base weights are frozen in the compute dtype (no master,
///   no gradient, no moments); the adapters' r·(in + out) parameters per targeted projection count
///   in weights and get the master, gradient and moment terms above; activations add the r values
///   of A x per token per targeted projection; the frozen head needs no fp32 ∂W accumulator;</item>
/// <item>statistics (the batch-gate entropy pass of forking / gate=batch, PolicyUpdate.BatchEntropy): its
///   per-token outputs, the mini-batch's float32 entropies (StatisticsTokens × 4), held through the
///   update; the pass itself forwards one micro-batch without gradient, in the loss's micro-batches and
///   through the same fused head chunk (layer inputs + one layer, 3 × chunk × V × 4 logits with no ∂W
///   accumulator; unchunked 4 × response tokens × V × 4), a peak before the update's that is counted only
///   by what it exceeds the update's activations + logits (nothing, with these formulas);</item>
/// <item>kv_cache: rows × (prompt + response) × layers × 2 × kv·hd × compute bytes for the
///   in-process sampler (0 when rollouts come from a server).</item>
/// <item>data parallelism over N ranks (issue 21), every figure per rank: each rank samples and updates its
///   1/N of the prompts (rollout rows ⌈P·G/N⌉; the statistics pass's mini-batch share), and holds the whole
///   model, its backward gradients and, replicated, the whole optimizer; with shard_optimizer (ZeRO-2) the
///   fp32 master weights, fp32 gradient sums and AdamW moments are those of its ⌈p/N⌉ parameters (in
///   float32 the weights stay whole and the owned gradient sums get a buffer of their own);
///   collective: the flat fp32 gradient bucket of min(p, 16 Mi) elements (AdamW.BucketElements) that is
///   all-reduced, and with shard_optimizer also its reduce-scattered shard (bucket/N fp32) and the bucket
///   of all-gathered weights (bucket × compute bytes); the gathered mini-batch context of forking and
///   KL-Cov counts in statistics.</item>
/// </list>
/// </summary>
public static class MemoryPlan
{
    /// <summary>Parameters of a Qwen2 / Llama decoder, exactly.</summary>
    public static long Parameters(ModelConfig c)
    {
        long d = c.HiddenSize, v = c.VocabSize, inter = c.IntermediateSize, hd = c.HeadDim;
        long qOut = (long)c.NumAttentionHeads * hd, kvOut = (long)c.NumKeyValueHeads * hd;
        long attention = d * qOut + 2 * d * kvOut + qOut * d + (c.AttentionBias ? qOut + 2 * kvOut : 0);
        long mlp = 3 * d * inter;
        long norms = 2 * d;
        long embed = v * d;
        return embed + c.NumHiddenLayers * (attention + mlp + norms) + d + (c.TieWordEmbeddings ? 0 : v * d);
    }

    /// <summary>LoRA adapter parameters, exactly: r·(in + out) per targeted projection per layer.</summary>
    public static long LoraParameters(ModelConfig c, int rank, IReadOnlyList<string>? targets = null)
    {
        long d = c.HiddenSize, inter = c.IntermediateSize, hd = c.HeadDim;
        long q = (long)c.NumAttentionHeads * hd, kv = (long)c.NumKeyValueHeads * hd;
        var dims = new Dictionary<string, (long In, long Out)>
        {
            ["q_proj"] = (d, q), ["k_proj"] = (d, kv), ["v_proj"] = (d, kv), ["o_proj"] = (q, d),
            ["gate_proj"] = (d, inter), ["up_proj"] = (d, inter), ["down_proj"] = (inter, d),
        };
        long perLayer = (targets ?? LoraSettings.AllProjections).Sum(t => rank * (dims[t].In + dims[t].Out));
        return c.NumHiddenLayers * perLayer;
    }

    /// <summary>Bytes of activations one token keeps in one layer (see the class comment).</summary>
    public static long ActivationBytesPerTokenPerLayer(ModelConfig c, int computeBytes)
    {
        long d = c.HiddenSize, kv = (long)c.NumKeyValueHeads * c.HeadDim, inter = c.IntermediateSize;
        return (9 * d + 3 * kv + 4 * inter) * computeBytes + 4 * d * 4;
    }

    /// <summary>The plan of a model under settings, against a GPU of <paramref name="gpuMemoryBytes"/>.</summary>
    public static MemoryPlanResult Compute(ModelConfig c, PlanSettings s, long gpuMemoryBytes)
    {
        long total = Parameters(c), b = s.ComputeBytes, d = c.HiddenSize, v = c.VocabSize;
        bool fp32 = b == 4;
        bool lora = s.LoraRank > 0;
        long adapters = lora ? LoraParameters(c, s.LoraRank, s.LoraTargets) : 0;
        // p: the trained parameters (all, or the adapters with a frozen base)
        long p = lora ? adapters : total;
        long weights = (total + adapters) * b * (s.ReferenceModel && !lora ? 2 : 1);
        int n = System.Math.Max(1, s.WorldSize);
        bool shard = s.ShardOptimizer && n > 1;
        long owned = shard ? (p + n - 1) / n : p;                      // parameters whose optimizer state this rank keeps
        long master = fp32 ? 0 : owned * 4;
        long moments = owned * 8;
        // the gradients backward writes: in float32 they are also the sums across micro-batches (unless
        // sharded: then the owned sums are a buffer of their own); in bf16 an fp32 sum buffer is added
        // (on the host when offloading)
        long backwardGrads = fp32 ? p * 4 : p * b, sums = shard ? owned * 4 : fp32 ? 0 : p * 4;
        long bucket = System.Math.Min(p, SimKO.Host.Training.AdamW.BucketElements);
        long collective = n == 1 ? 0 : shard ? bucket * 4 + (bucket + n - 1) / n * 4 + bucket * b : bucket * 4;
        long perLayer = ActivationBytesPerTokenPerLayer(c, s.ComputeBytes)
            + (lora ? (long)s.LoraRank * (s.LoraTargets ?? LoraSettings.AllProjections).Count * b : 0);
        long without = s.MicroBatchTokens * perLayer * c.NumHiddenLayers;
        long with = s.MicroBatchTokens * (c.NumHiddenLayers * d * b + perLayer);
        long logits = s.LogitsChunkTokens > 0
            ? 3 * System.Math.Min(s.LogitsChunkTokens, s.ResponseTokens) * v * 4 + (lora ? 0 : v * d * 4)
            : 4 * s.ResponseTokens * v * 4;
        long kvPerToken = (long)c.NumHiddenLayers * 2 * c.NumKeyValueHeads * c.HeadDim * b;
        long kv = s.RolloutRows * s.SequenceTokens * kvPerToken;
        long activations = s.GradientCheckpointing ? with : without;
        long statistics = 0;
        if (s.StatisticsTokens > 0)
        {
            long passLogits = s.LogitsChunkTokens > 0 ? 3 * System.Math.Min(s.LogitsChunkTokens, s.ResponseTokens) * v * 4 : 4 * s.ResponseTokens * v * 4;
            long passPeak = with + passLogits;                          // no gradient: layer inputs + one layer, one chunk
            statistics = s.StatisticsTokens * 4 + System.Math.Max(0, passPeak - (activations + logits));
        }
        statistics += s.StatisticsGatherBytes;
        var components = s.OptimizerOffload
            ? new MemoryComponents(weights, 0, backwardGrads, 0, activations, logits, kv, statistics, collective)
            : new MemoryComponents(weights, master, backwardGrads + sums, moments, activations, logits, kv, statistics, collective);
        // offloaded: an fp32 master copy (even when computing in float32), the fp32 sums and the moments
        long host = s.OptimizerOffload ? owned * 4 + sums + moments : 0;
        var plan = new MemoryPlanResult(total, components, host, with, without, gpuMemoryBytes, []) { AdapterParameters = adapters, WorldSize = n, ShardOptimizer = shard };
        return plan with { Advice = Advise(c, s, plan) };
    }

    /// <summary>What to change when the plan does not fit, largest saving first.</summary>
    static List<string> Advise(ModelConfig c, PlanSettings s, MemoryPlanResult plan)
    {
        var advice = new List<string>();
        if (plan.Fits) return advice;
        long over = plan.TotalBytes - plan.GpuMemoryBytes;
        var options = new List<(long Saving, string Text)>();
        var k = plan.Components;
        if (!s.OptimizerOffload)
            options.Add((k.MasterWeights + k.OptimizerState + (s.ComputeBytes == 4 ? 0 : plan.TrainableParameters * 4), "optimizer_offload=true (master weights, fp32 gradient sums and AdamW moments to host memory)"));
        if (!s.GradientCheckpointing)
            options.Add((plan.ActivationsWithoutCheckpointing - plan.ActivationsWithCheckpointing, "gradient_checkpointing=true"));
        if (s.ComputeBytes == 4)
            options.Add((plan.Parameters * 2, "dtype=bfloat16 (on CUDA; master weights stay float32)"));
        if (s.LogitsChunkTokens == 0 || s.LogitsChunkTokens > 2048)
            options.Add((k.Logits - (3L * System.Math.Min(1024, s.ResponseTokens) * c.VocabSize * 4 + (long)c.VocabSize * c.HiddenSize * 4), "logits_chunk_tokens=1024"));
        if (k.KvCache > 0)
            options.Add((k.KvCache, "rollout_url=<a vLLM/SGLang server> (no KV cache on this GPU), or fewer prompts_per_step × samples_per_prompt"));
        if (k.Activations > 0)
            options.Add((k.Activations / 2, "halve max_tokens_per_micro_batch (or micro_batch_size)"));
        foreach (var (saving, text) in options.Where(o => o.Saving > 0).OrderByDescending(o => o.Saving))
            advice.Add($"{text}: saves {Gib(saving)}");
        advice.Insert(0, $"over by {Gib(over)}");
        return advice;
    }

    /// <summary>The plan's inputs from a typed run spec: micro-batch tokens from
    /// max_tokens_per_micro_batch (or micro_batch_size rows of prompt + response), rollout rows from
    /// the sampler's chunk (0 with a rollout server), a reference copy when the method's KL β > 0, and
    /// the mini-batch's response positions when the method's gate is batch-level (its statistics pass).
    /// With <paramref name="worldSize"/> ranks each samples ⌈P·G/N⌉ rows and holds its share of a mini-batch's
    /// entropies, and forking and KL-Cov gather the global mini-batch's context: per response position the mask and
    /// the entropy or old log-prob (fp32), twice (the gathered buffer and its reassembled copy), plus the advantages.</summary>
    public static PlanSettings SettingsOf(RunSpec.TrainSpec spec, int promptTokens, int worldSize = 1, bool shardOptimizer = false)
    {
        long seq = promptTokens + (long)spec.MaxNewTokens;
        var m = spec.Memory;
        int n = System.Math.Max(1, worldSize);
        long tokens = m.MaxTokensPerMicroBatch > 0 ? m.MaxTokensPerMicroBatch : spec.MicroBatchSize * seq;
        long response = m.MaxTokensPerMicroBatch > 0 ? (long)System.Math.Ceiling(tokens * (double)spec.MaxNewTokens / seq) : (long)spec.MicroBatchSize * spec.MaxNewTokens;
        long sequences = ((long)spec.PromptsPerStep * spec.SamplesPerPrompt + n - 1) / n;   // this rank's share
        long rows = spec.Rollout.IsInProcess ? System.Math.Min(KvCacheSampler.DefaultMaxRows, sequences) : 0;
        long miniRows = (long)System.Math.Ceiling((long)spec.PromptsPerStep * spec.SamplesPerPrompt / (double)System.Math.Max(1, spec.MiniBatches));
        var objective = SimKO.Math.Methods.objective(spec.Method);
        bool gate = SimKO.Math.Objective.needsEntropy(objective), klCov = objective.KlCov != null;
        long statistics = gate ? (miniRows + n - 1) / n * spec.MaxNewTokens : 0;
        int channels = 1 + (gate ? 1 : 0) + (klCov ? 1 : 0);
        long gather = n > 1 && (gate || klCov) ? 2L * 4 * miniRows * (channels * (long)spec.MaxNewTokens + 1) : 0;
        return new PlanSettings(spec.DType.IsBFloat16 ? 2 : 4, m.OptimizerOffload, m.GradientCheckpointing, m.LogitsChunkTokens,
            tokens, response, rows, seq, SimKO.Math.Methods.common(spec.Method).Kl.Beta > 0 && spec.Lora.Rank == 0,
            spec.Lora.Rank, spec.Lora.TargetModules.ToList(), statistics, n, shardOptimizer, gather);
    }

    public static string Gib(long bytes) => (bytes / 1073741824.0).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + " GiB";
}
