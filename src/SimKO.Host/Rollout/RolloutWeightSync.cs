using Microsoft.Extensions.Logging;
using SimKO.Host.Collective;
using SimKO.Host.Model;
using TorchSharp;

namespace SimKO.Host.Rollout;

/// <summary>What a weight sync writes and the server loads.</summary>
public enum SyncPayload
{
    /// <summary>The whole policy as an HF folder, loaded over the server's weights (vLLM reload_weights, SGLang and simko
    /// update_weights_from_disk).</summary>
    FullWeights,
    /// <summary>Only the LoRA adapter as a PEFT folder, loaded under a new name (the previous one unloaded first); requests then
    /// select it (<see cref="ServerRolloutClient.Adapter"/>).</summary>
    Adapter,
}

/// <summary>The stale-weight probe found the server's log-probs differ from the trainer's.</summary>
public sealed class StaleWeightsException(string message) : InvalidOperationException(message);

/// <summary>
/// Weight sync to an inference server after every step (SPEC §8): export the policy as an HF folder to
/// <c>&lt;out&gt;/rollout-weights/&lt;version&gt;/</c> (the last two are kept), tell the server to load it,
/// then probe: the server's log-probs of one fixed sequence must match the trainer's within
/// <paramref name="tolerance"/> (mean absolute difference), else the run stops — vLLM has shipped reloads
/// that kept serving stale weights (vllm-project/vllm#32718). The probe also asks for a seeded completion of the
/// same sequence and compares the log-probs of its generated tokens: the previous probe left that prefix in the
/// server's prefix cache, and vLLM answers prompt log-prob requests without reading the cache, so only generated
/// tokens show KV kept from the old weights (a reload without a prefix-cache reset).
/// </summary>
/// <param name="export">writes the current policy as an HF folder, or (<see cref="SyncPayload.Adapter"/>) its adapter as a PEFT folder</param>
/// <param name="probeIds">the fixed sequence (≥ 2 tokens) whose log-probs are compared</param>
/// <param name="tolerance">mean |log p_server − log p_trainer| allowed (fp32 server: 1e-3; a bf16 server needs ~0.05)</param>
/// <param name="payload">the whole weights, or the LoRA adapter only: then version v is loaded as
/// <c>simko-&lt;run tag&gt;-v&lt;v&gt;</c>, a name no earlier sync used (vLLM refuses a loaded name, and keys its prefix cache by
/// the name, so a reused name could serve KV of the old adapter); the probe runs on that adapter</param>
/// <param name="ranks">the ranks of a data-parallel run (issue 21 §5): rank 0 exports, loads and probes while the others wait
/// at a barrier (all ranks hold the same weights, see DataParallel.CheckWeights); every rank then samples its own prompts from
/// the new weights (an adapter run: under the adapter name rank 0 loaded, from a run tag rank 0 broadcasts)</param>
public sealed class RolloutWeightSync(ServerRolloutClient client, string outDir, Action<string> export, IPolicy policy,
    int[] probeIds, double tolerance, ILogger log, SyncPayload payload = SyncPayload.FullWeights, ICollective? ranks = null)
{
    public const string Folder = "rollout-weights";

    /// <summary>Tells this run's adapter names from another run's on the same server (rank 0's on every rank).</summary>
    readonly string _runTag = RunTag(ranks);

    static string RunTag(ICollective? ranks)
    {
        var tag = BitConverter.ToUInt32(Guid.NewGuid().ToByteArray()) & 0xFFFFFFFFL;
        if (ranks is { WorldSize: > 1 })
        {
            using var t = torch.tensor(new[] { tag }, torch.ScalarType.Int64);
            ranks.Broadcast(t, 0);
            tag = t.item<long>();
        }
        return tag.ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Whether this process loads the server's weights: the only process, or rank 0.</summary>
    bool Loads => ranks is null || ranks.Rank == 0;

    /// <summary>The adapter name version <paramref name="version"/> is loaded under.</summary>
    public string AdapterName(long version) => $"simko-{_runTag}-v{version.ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    /// <summary>Versions synced so far (0 before the first sync).</summary>
    public long Version { get; private set; }

    /// <summary>The last probe's mean absolute log-prob difference.</summary>
    public double LastProbeDifference { get; private set; }

    /// <summary>The last probe's mean absolute log-prob difference over the generated tokens of its seeded completion.</summary>
    public double LastGeneratedDifference { get; private set; }

    /// <summary>New tokens of the probe's seeded completion, and its seed (fixed, so every sync asks the same).</summary>
    public const int ProbeNewTokens = 4;
    public const long ProbeSeed = 0x5EED;

    /// <summary>Export, load on the server, probe; returns the new version. With several ranks every rank calls it: rank 0
    /// syncs, the others wait for it at a barrier (a rank 0 that fails stops them within the collective timeout).</summary>
    public long Sync(long version)
    {
        if (!Loads)
        {
            ranks!.Barrier();
            if (payload == SyncPayload.Adapter) client.UseAdapter(AdapterName(version));
            Version = version;
            return version;
        }
        SyncHere(version);
        if (ranks is { WorldSize: > 1 }) ranks.Barrier();
        return version;
    }

    void SyncHere(long version)
    {
        if (probeIds.Length < 2) throw new ArgumentException("the stale-weight probe needs a sequence of at least 2 tokens");
        var root = Path.Combine(outDir, Folder);
        var dir = Path.Combine(root, version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        export(dir);
        long? reported;
        if (payload == SyncPayload.Adapter)
        {
            // unload before loading: vLLM's adapter cache holds max_cpu_loras adapters (default max_loras = 1) and evicts the
            // oldest to make room (LRUCacheWorkerLoRAManager.add_adapter, vllm/lora/worker_manager.py); unloading an evicted
            // one then fails (remove_lora returns false: HTTP 500). The trainer sends no requests in between.
            if (client.Adapter is { } previous) client.UnloadAdapter(previous);
            var name = AdapterName(version);
            reported = client.LoadAdapter(name, dir);
            client.UseAdapter(name);
        }
        else reported = client.LoadWeights(dir);
        var server = client.ServerLogProbs(probeIds);
        var mine = SequenceScores.LogProbs(policy, probeIds);
        if (server.Length != mine.Length)
            throw new StaleWeightsException($"{client.Options.Url}: the probe returned {server.Length} log-probs for {probeIds.Length} tokens, expected {mine.Length}");
        LastProbeDifference = server.Zip(mine, (a, b) => System.Math.Abs((double)a - b)).Average();
        if (!(LastProbeDifference <= tolerance))
            throw new StaleWeightsException(
                $"{client.Options.Url}: after loading {dir} (weights version {version}) the server's log-probs of the probe sequence differ from the trainer's " +
                $"by {LastProbeDifference:G3} on average (tolerance {tolerance:G3}): the server is serving other weights than the trainer's (stale reload, see vllm-project/vllm#32718), " +
                "or it computes in a lower precision (raise the tolerance for a bf16 server)");
        var completion = client.ProbeCompletion(probeIds, ProbeNewTokens, ProbeSeed);
        if (completion.Tokens.Length > 0)
        {
            var full = SequenceScores.LogProbs(policy, [.. probeIds, .. completion.Tokens]);
            var generated = full[^completion.Tokens.Length..];
            LastGeneratedDifference = completion.SamplerLogProbs.Zip(generated, (a, b) => System.Math.Abs((double)a - b)).Average();
            if (!(LastGeneratedDifference <= tolerance))
                throw new StaleWeightsException(
                    $"{client.Options.Url}: after loading {dir} (weights version {version}) the server's log-probs of the {completion.Tokens.Length} tokens it generated " +
                    $"after the cached probe prefix differ from the trainer's by {LastGeneratedDifference:G3} on average (tolerance {tolerance:G3}), while the prompt " +
                    $"log-probs agree ({LastProbeDifference:G3}): the server reuses prefix-cache KV computed with the old weights (vLLM: the reload was not " +
                    "followed by a working POST /reset_prefix_cache)");
        }
        Version = version;
        log.LogInformation("rollout weights version {Version} loaded by {Url}{Adapter}{Server} (probe |Δ log p| {Diff:G3}, generated {Gen:G3})", version, client.Options.Url,
            client.Adapter is { } a ? $" as adapter {a}" : "", reported is long r ? $" (server version {r})" : "", LastProbeDifference, LastGeneratedDifference);
        foreach (var old in Directory.EnumerateDirectories(root)
                     .Select(d => (Dir: d, V: long.TryParse(Path.GetFileName(d), out var v) ? v : long.MaxValue))
                     .Where(x => x.V <= version - 2))
            Directory.Delete(old.Dir, true);
    }
}
