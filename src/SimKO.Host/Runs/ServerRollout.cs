using Microsoft.Extensions.Logging;
using SimKO.Cli;
using SimKO.Host.Checkpoints;
using SimKO.Host.Model;
using SimKO.Host.Rollout;
using SimKO.Host.Training;

namespace SimKO.Host.Runs;

/// <summary>
/// A run's rollouts on an inference server (issue 13): the parts' rollout engine becomes a
/// <see cref="ServerRolloutClient"/> and the trainer syncs weights before the first step and after every
/// step (export to <c>&lt;out&gt;/rollout-weights/&lt;version&gt;/</c>, reload route, stale-weight probe; with several ranks rank 0
/// syncs while the others wait, and every rank sends its own prompts). A LoRA
/// policy syncs its adapter only (a PEFT folder loaded under a new name, issue 22.5). With no URL the parts stay in process.
/// </summary>
public static class ServerRollout
{
    /// <summary>Probe tolerance (mean |Δ log p| over the probe sequence) by server: simko serves in the
    /// trainer's float32; vLLM and SGLang usually serve bfloat16, whose rounding alone moves log-probs by ~1e-2.</summary>
    public static double DefaultTolerance(RolloutServer server) => server == RolloutServer.Simko ? 1e-3 : 0.05;

    /// <summary>The client settings of a spec's rollout server.</summary>
    public static RolloutClientOptions OptionsOf(RunSpec.RolloutServer s) =>
        new(s.Url, s.Kind.Tag switch
        {
            RunSpec.ServerKind.Tags.Vllm => RolloutServer.Vllm,
            RunSpec.ServerKind.Tags.Sglang => RolloutServer.Sglang,
            _ => RolloutServer.Simko,
        })
        {
            ApiKey = Microsoft.FSharp.Core.OptionModule.ToObj(s.ApiKey),
            Concurrency = s.Concurrency,
            TimeoutSeconds = s.TimeoutSeconds,
            Retries = s.Retries,
        };

    /// <summary>The parts with the server client and the weight-sync hook; dispose the client after the run. A policy
    /// with LoRA adapters syncs them alone (PEFT folders naming <paramref name="baseModel"/> as their base).</summary>
    public static (TrainerParts Parts, ServerRolloutClient Client) Attach(TrainerParts parts, RolloutClientOptions options, string outDir, ILogger log,
        double? probeTolerance = null, string baseModel = "base")
    {
        var client = new ServerRolloutClient(options);
        var lora = parts.Policy is ModelPolicy { Model: { Lora: not null } model } ? model : null;
        var sync = lora is null
            ? new RolloutWeightSync(client, outDir, parts.ExportHf, parts.Policy, ProbeSequence(parts), probeTolerance ?? DefaultTolerance(options.Server), log,
                ranks: parts.Collective)
            : new RolloutWeightSync(client, outDir, dir => PeftAdapter.Save(lora, dir, baseModel), parts.Policy, ProbeSequence(parts),
                probeTolerance ?? DefaultTolerance(options.Server), log, SyncPayload.Adapter, parts.Collective);
        log.LogInformation("rollouts on {Server} at {Url} (concurrency {C}, timeout {T} s, {R} retries)", options.Server, options.Url,
            options.Concurrency, options.TimeoutSeconds, options.Retries);
        return (parts with { Rollout = client, SyncRolloutWeights = sync.Sync }, client);
    }

    /// <summary>The parts sampling with another engine (e.g. the in-process <see cref="ContinuousBatcher"/>).</summary>
    public static TrainerParts WithEngine(TrainerParts parts, IRolloutEngine engine) => parts with { Rollout = engine };

    /// <summary>The fixed probe sequence: the first training prompts, joined until it has at least 8 tokens.</summary>
    public static int[] ProbeSequence(TrainerParts parts)
    {
        var ids = new List<int>();
        foreach (var p in parts.Problems)
        {
            ids.AddRange(p.PromptIds);
            if (ids.Count >= 8) break;
        }
        if (ids.Count < 2) throw new ArgumentException("the stale-weight probe needs training prompts with at least 2 tokens in all");
        return ids.ToArray();
    }
}
