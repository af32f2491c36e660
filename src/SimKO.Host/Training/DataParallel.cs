using SimKO.Host.Collective;
using SimKO.Math;
using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Training;

/// <summary>
/// The data-parallel pieces of a training step (issue 21): which prompts a rank takes, weights from
/// rank 0, a cross-rank weight checksum, and the step's metrics over every rank's samples.
/// </summary>
public static class DataParallel
{
    /// <summary>A run of consecutive step positions.</summary>
    public readonly record struct Share(int Start, int Count);

    /// <summary>Rank <paramref name="rank"/>'s share of each of the <paramref name="miniBatches"/> mini-batches
    /// of <paramref name="prompts"/> prompt groups: whole groups, the same count on every rank, so each local
    /// mini-batch is this rank's part of the global one.</summary>
    public static IReadOnlyList<Share> Shares(int prompts, int miniBatches, int rank, int worldSize)
    {
        if (prompts % (miniBatches * worldSize) != 0)
            throw new ArgumentException($"prompts_per_step = {prompts} must split into mini_batches × ranks = {miniBatches} × {worldSize} equal shares of whole prompt groups");
        int per = prompts / miniBatches, each = per / worldSize;
        return Enumerable.Range(0, miniBatches).Select(m => new Share(m * per + rank * each, each)).ToList();
    }

    /// <summary>Every rank's master weights (and parameters) become rank 0's.</summary>
    public static void BroadcastWeights(ICollective ranks, AdamW optimizer)
    {
        var masters = optimizer.MasterWeights();
        using (no_grad())
            foreach (var (_, w) in masters.OrderBy(x => x.Key, StringComparer.Ordinal))
            {
                using var flat = w.detach().reshape(-1).contiguous();
                ranks.Broadcast(flat, 0);
                w.copy_(flat.view(w.shape));
            }
        optimizer.LoadMasterWeights(masters, "rank 0's weights");
    }

    /// <summary>A float64 sum and sum of squares of every master weight, gathered from all ranks; stops the run,
    /// naming the ranks, when one differs from rank 0's (the updates are identical, so the weights are bit-equal).</summary>
    public static void CheckWeights(ICollective ranks, AdamW optimizer, long step)
    {
        double sum = 0, sq = 0;
        using (no_grad())
            foreach (var (_, w) in optimizer.MasterWeights().OrderBy(x => x.Key, StringComparer.Ordinal))
            {
                using var w64 = w.to(ScalarType.Float64);
                sum += w64.sum().item<double>();
                sq += w64.square().sum().item<double>();
            }
        using var mine = tensor(new[] { sum, sq }, ScalarType.Float64);
        using var all = ranks.AllGather(mine);
        var v = all.data<double>().ToArray();
        var diverged = Enumerable.Range(1, ranks.WorldSize - 1).Where(r => v[2 * r] != v[0] || v[2 * r + 1] != v[1]).ToList();
        if (diverged.Count > 0)
            throw new InvalidOperationException($"step {step}: the weights of rank(s) {string.Join(", ", diverged)} differ from rank 0's " +
                $"(checksum {string.Join("; ", diverged.Select(r => $"rank {r}: {v[2 * r]:R}/{v[2 * r + 1]:R}"))} vs rank 0: {v[0]:R}/{v[1]:R}); stopping");
    }

    /// <summary>The step's sample metrics over every rank's samples, and per-rank rollout and update seconds (min/max).</summary>
    public static void ReduceStepMetrics(ICollective ranks, Dictionary<string, double> metrics, IReadOnlyList<Sample> samples, int g,
        double rolloutSeconds, double updateSeconds, double mismatch, long responseTokens)
    {
        int n = samples.Count, prompts = n / g;
        double reward = samples.Sum(s => s.Reward), correct = samples.Count(s => s.Reward > 0), length = samples.Sum(s => s.Response.Length);
        double passG = Enumerable.Range(0, prompts).Count(p => samples.Skip(p * g).Take(g).Any(s => s.Reward > 0));
        var t = PolicyUpdate.SumOverRanks(ranks, n, prompts, reward, correct, length, passG, mismatch * n, responseTokens);
        metrics["reward_mean"] = t[2] / t[0];
        metrics["train_pass@1"] = t[3] / t[0];
        metrics[$"train_pass@{g}"] = t[5] / t[1];
        metrics["response_length"] = t[4] / t[0];
        metrics["sampler_logprob_mismatch"] = t[6] / t[0];
        using var mine = tensor(new[] { rolloutSeconds, updateSeconds }, ScalarType.Float64);
        using var all = ranks.AllGather(mine);
        var s = all.data<double>().ToArray();
        var roll = Enumerable.Range(0, ranks.WorldSize).Select(r => s[2 * r]).ToList();
        var upd = Enumerable.Range(0, ranks.WorldSize).Select(r => s[2 * r + 1]).ToList();
        metrics["rollout_s_min"] = roll.Min(); metrics["rollout_s_max"] = roll.Max();
        metrics["update_s_min"] = upd.Min(); metrics["update_s_max"] = upd.Max();
        metrics["rollout_tokens_per_s"] = t[7] / System.Math.Max(1e-9, roll.Max());
        metrics["world_size"] = ranks.WorldSize;
    }
}
