using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SimKO.Cli;
using SimKO.Host.Model;
using SimKO.Host.Planning;

namespace SimKO.Host.Commands;

/// <summary>`simko plan`: a run's GPU memory from config.json and the training settings, as a table or JSON.</summary>
public static class PlanCommand
{
    public static int Run(PlanArgs.PlanOptions o)
    {
        var configPath = Path.Combine(o.ModelFolder, "config.json");
        ModelConfig config;
        try { config = ModelConfig.Load(configPath); }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        long gpu = (long)(o.GpuMemoryGiB * 1073741824.0);
        // the run's own plan (sharded when it sets shard_optimizer=true); with several ranks also both layouts side by side
        var settings = MemoryPlan.SettingsOf(o.Spec, o.PromptTokens, o.WorldSize, o.Spec.Distributed.ShardOptimizer);
        var plan = MemoryPlan.Compute(config, settings, gpu);
        var sharded = o.WorldSize > 1 ? MemoryPlan.Compute(config, settings with { ShardOptimizer = true }, gpu) : null;
        var replicated = o.WorldSize > 1 ? MemoryPlan.Compute(config, settings with { ShardOptimizer = false }, gpu) : null;
        Console.WriteLine(o.Json ? Json(plan, sharded).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : Table(config, o.Spec, settings, plan, sharded, replicated));
        return plan.Fits ? 0 : 1;
    }

    /// <summary>The JSON of a plan: exactly parameters, components (bytes), total_bytes, gpu_memory_bytes, fits; with
    /// several ranks (figures per rank) also world_size and shard_optimizer, the components, total_bytes and fits of
    /// the plan with sharded optimizer state.</summary>
    public static JsonObject Json(MemoryPlanResult plan, MemoryPlanResult? sharded = null)
    {
        var json = Plain(plan);
        if (sharded is not null)
        {
            var s = Plain(sharded);
            json["world_size"] = plan.WorldSize;
            json["shard_optimizer"] = new JsonObject { ["components"] = s["components"]!.DeepClone(), ["total_bytes"] = sharded.TotalBytes, ["fits"] = sharded.Fits };
        }
        // LoRA plans add the trained adapter parameters after parameters
        if (plan.AdapterParameters > 0)
        {
            var ordered = new JsonObject();
            foreach (var (k, v) in json.ToList())
            {
                json.Remove(k);
                ordered[k] = v;
                if (k == "parameters") ordered["adapter_parameters"] = plan.AdapterParameters;
            }
            return ordered;
        }
        return json;
    }

    static JsonObject Plain(MemoryPlanResult plan) => new()
    {
        ["parameters"] = plan.Parameters,
        ["components"] = new JsonObject
        {
            ["weights"] = plan.Components.Weights, ["master_weights"] = plan.Components.MasterWeights,
            ["gradients"] = plan.Components.Gradients, ["optimizer_state"] = plan.Components.OptimizerState,
            ["activations"] = plan.Components.Activations, ["logits"] = plan.Components.Logits, ["kv_cache"] = plan.Components.KvCache,
            ["statistics"] = plan.Components.Statistics, ["collective"] = plan.Components.Collective,
        },
        ["total_bytes"] = plan.TotalBytes,
        ["gpu_memory_bytes"] = plan.GpuMemoryBytes,
        ["fits"] = plan.Fits,
    };

    /// <summary>The human table: every component with its formula's inputs, the total and the verdict.</summary>
    public static string Table(ModelConfig c, RunSpec.TrainSpec spec, PlanSettings s, MemoryPlanResult plan, MemoryPlanResult? sharded = null, MemoryPlanResult? replicated = null)
    {
        static string N(long x) => x.ToString("N0", CultureInfo.InvariantCulture);
        var dtype = RunSpec.dtypeName(spec.DType);
        var k = plan.Components;
        var t = new StringBuilder();
        t.AppendLine($"Memory plan: {c.ModelType}, {N(plan.Parameters)} parameters (d {c.HiddenSize}, {c.NumHiddenLayers} layers, {c.NumAttentionHeads} heads / {c.NumKeyValueHeads} KV, MLP {c.IntermediateSize}, V {N(c.VocabSize)}, {(c.TieWordEmbeddings ? "tied" : "untied")} head)");
        t.AppendLine($"Settings: dtype={dtype}, optimizer_offload={Lower(s.OptimizerOffload)}, gradient_checkpointing={Lower(s.GradientCheckpointing)}, logits_chunk_tokens={s.LogitsChunkTokens}, " +
                     $"{N(s.MicroBatchTokens)} tokens per micro-batch ({N(s.ResponseTokens)} response), rollout {N(s.RolloutRows)} rows × {N(s.SequenceTokens)} tokens");
        if (plan.WorldSize > 1)
            t.AppendLine($"Data parallelism: {plan.WorldSize} ranks; every figure below is per rank (each samples and updates on 1/{plan.WorldSize} of the step's prompt groups)" +
                         (plan.ShardOptimizer ? "; the optimizer state is sharded (shard_optimizer)." : "; the optimizer state is replicated."));
        if (s.LoraRank > 0)
            t.AppendLine($"LoRA: r {s.LoraRank} on {string.Join(",", s.LoraTargets ?? SimKO.Host.Model.LoraSettings.AllProjections)}: {N(plan.AdapterParameters)} adapter parameters trained " +
                         $"({100.0 * plan.AdapterParameters / plan.Parameters:0.00} % of the base); the base is frozen in {dtype} (no master, gradient or moments), the KL reference is the base (adapters off). " +
                         "Below, \"parameters\" in master_weights, gradients and optimizer_state means the adapter parameters.");
        t.AppendLine();
        t.AppendLine("| component | bytes | GiB | what |");
        t.AppendLine("|---|---:|---:|---|");
        void Row(string name, long bytes, string what) => t.AppendLine($"| {name} | {N(bytes)} | {Gib(bytes)} | {what} |");
        Row("weights", k.Weights, $"{(s.LoraRank > 0 ? "(base + adapter) " : "")}parameters × {s.ComputeBytes} B ({dtype}){(s.ReferenceModel ? " × 2 (policy + frozen reference)" : "")}");
        string owned = plan.ShardOptimizer ? $"⌈parameters / {plan.WorldSize}⌉" : "parameters";
        Row("master_weights", k.MasterWeights, s.OptimizerOffload ? "fp32 copy in host memory (offload)" : s.ComputeBytes == 4 ? "the float32 weights are the master weights" : $"{owned} × 4 B (fp32)");
        Row("gradients", k.Gradients, plan.ShardOptimizer
            ? $"parameters × {(s.ComputeBytes == 4 ? 4 : s.ComputeBytes)} B of backward + {owned} × 4 B fp32 sums (reduce-scattered){(s.OptimizerOffload ? " in host memory" : "")}"
            : s.ComputeBytes == 4 ? "parameters × 4 B (fp32, accumulated in place)" : s.OptimizerOffload ? $"parameters × {s.ComputeBytes} B of backward; fp32 sums in host memory" : $"parameters × {s.ComputeBytes} B of backward + parameters × 4 B fp32 sums");
        Row("optimizer_state", k.OptimizerState, s.OptimizerOffload ? "AdamW moments in host memory (offload)" : $"AdamW m and v, {owned} × 8 B (fp32)");
        Row("activations", k.Activations, s.GradientCheckpointing
            ? $"layer inputs ({c.NumHiddenLayers} × d) + one layer recomputed, per token; without checkpointing: {MemoryPlan.Gib(plan.ActivationsWithoutCheckpointing)}"
            : $"{N(MemoryPlan.ActivationBytesPerTokenPerLayer(c, s.ComputeBytes))} B per token per layer; with checkpointing: {MemoryPlan.Gib(plan.ActivationsWithCheckpointing)}");
        Row("logits", k.Logits, s.LogitsChunkTokens > 0 ? $"3 × {N(System.Math.Min(s.LogitsChunkTokens, s.ResponseTokens))} tokens × V × 4 B{(s.LoraRank > 0 ? " (frozen head: no ∂W)" : " + fp32 ∂W (V × d × 4 B)")}" : "4 × response tokens × V × 4 B (whole micro-batch)");
        Row("kv_cache", k.KvCache, s.RolloutRows > 0 ? $"{N(s.RolloutRows)} rows × {N(s.SequenceTokens)} tokens × {c.NumHiddenLayers} layers × 2 × {c.NumKeyValueHeads * c.HeadDim} × {s.ComputeBytes} B" : "rollouts from a server (rollout_url)");
        if (s.StatisticsTokens > 0)
            Row("statistics", k.Statistics, $"batch-gate entropy pass: {N(s.StatisticsTokens)} mini-batch response positions × 4 B (fp32 entropy); its chunked no-grad forward peaks below the update's" +
                (s.StatisticsGatherBytes > 0 ? $"; + {N(s.StatisticsGatherBytes)} B of the mini-batch context gathered from every rank" : ""));
        else if (s.StatisticsGatherBytes > 0)
            Row("statistics", k.Statistics, $"KL-Cov's mini-batch context gathered from every rank: mask and old log-probs of every response position, fp32, twice");
        if (plan.WorldSize > 1)
            Row("collective", k.Collective, plan.ShardOptimizer
                ? "fp32 gradient bucket (min(p, 16 Mi) elements) + its reduce-scattered shard + the all-gathered weight bucket"
                : "fp32 gradient bucket, min(parameters, 16 Mi) elements, all-reduced in place");
        t.AppendLine($"| **total** | **{N(plan.TotalBytes)}** | **{Gib(plan.TotalBytes)}** | GPU: {N(plan.GpuMemoryBytes)} B ({MemoryPlan.Gib(plan.GpuMemoryBytes)}) |");
        if (plan.HostBytes > 0) t.AppendLine($"\nHost memory for the offloaded optimizer: {MemoryPlan.Gib(plan.HostBytes)} (fp32 master weights{(s.ComputeBytes == 4 ? "" : ", fp32 gradient sums")} and AdamW moments).");
        t.AppendLine();
        if (plan.Fits)
            t.AppendLine($"Verdict: fits, with {MemoryPlan.Gib(plan.GpuMemoryBytes - plan.TotalBytes)} to spare (keep ~2 GiB for the CUDA context and allocator fragmentation).");
        else
        {
            t.AppendLine("Verdict: does not fit. What to change, largest saving first:");
            foreach (var a in plan.Advice) t.AppendLine($"- {a}");
        }
        if (sharded is not null) t.Append(PerRank(replicated ?? plan, sharded));
        return t.ToString();
    }

    /// <summary>Per rank of N ranks: the replicated optimizer beside the sharded one, component by component.</summary>
    public static string PerRank(MemoryPlanResult replicated, MemoryPlanResult sharded)
    {
        var t = new StringBuilder();
        t.AppendLine();
        t.AppendLine($"Per rank of {replicated.WorldSize} ranks, GiB, the optimizer state replicated and sharded (--set shard_optimizer=true, ZeRO-2: each rank keeps the masters, fp32 gradient sums and moments of 1/{replicated.WorldSize} of the parameters):");
        t.AppendLine();
        t.AppendLine("| component | replicated | shard_optimizer=true |");
        t.AppendLine("|---|---:|---:|");
        var (a, b) = (replicated.Components, sharded.Components);
        foreach (var (name, x, y) in new[]
                 {
                     ("weights", a.Weights, b.Weights), ("master_weights", a.MasterWeights, b.MasterWeights), ("gradients", a.Gradients, b.Gradients),
                     ("optimizer_state", a.OptimizerState, b.OptimizerState), ("activations", a.Activations, b.Activations), ("logits", a.Logits, b.Logits),
                     ("kv_cache", a.KvCache, b.KvCache), ("statistics", a.Statistics, b.Statistics), ("collective", a.Collective, b.Collective),
                 })
            t.AppendLine($"| {name} | {Gib(x)} | {Gib(y)} |");
        t.AppendLine($"| **total** | **{Gib(replicated.TotalBytes)}** | **{Gib(sharded.TotalBytes)}** |");
        t.AppendLine($"| fits {MemoryPlan.Gib(replicated.GpuMemoryBytes)} | {(replicated.Fits ? "yes" : "no")} | {(sharded.Fits ? "yes" : "no")} |");
        return t.ToString();
    }

    static string Gib(long bytes) => (bytes / 1073741824.0).ToString("0.00", CultureInfo.InvariantCulture);
    static string Lower(bool b) => b ? "true" : "false";
}
