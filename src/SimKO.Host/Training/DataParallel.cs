using Microsoft.FSharp.Core;
using SimKO.Host.Batches;
using SimKO.Host.Collective;
using SimKO.Math;
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

    /// <summary>
    /// The context of the global mini-batch (SPEC §7.11, issue 21): this rank holds rows
    /// [rank·b, (rank+1)·b) of it, the ranks' shares in rank order (<see cref="Shares"/>), so the global
    /// mini-batch is exactly the one a single process would take. Its statistics — the token and sequence
    /// counts, a batch-level gate's τ and KL-Cov's means and cut-off — are taken by the one statistics pass
    /// (<see cref="Objective.context"/>) over every rank's rows. Without a batch gate or KL-Cov the counts
    /// are all there is: summed over the ranks. Otherwise each rank contributes its mask, advantages and
    /// KL-Cov's old log-probs or a batch gate's entropies, padded to the widest response of any rank, in one
    /// float32 all-gather: the quantile and the top-k cut-off are order statistics, which no sum of per-rank
    /// values gives; the gathered rows are [W·b, R] floats per tensor, what one process holds anyway.
    /// </summary>
    /// <param name="mask">[b, r] this rank's response mask (0/1).</param>
    /// <param name="advantages">[b] this rank's response advantages.</param>
    /// <param name="oldLogProbs">[b, r] log π_old of this rank's response tokens.</param>
    /// <param name="entropy">[b, r] the current policy's entropies when the objective needs them (<see cref="Objective.needsEntropy"/>), else null.</param>
    /// <returns>The context, and the index in the global mini-batch of this rank's first row (KL-Cov's tie order).</returns>
    public static (Objective.MiniBatchContext Context, long RowOffset) GlobalContext(ICollective ranks, Objective.Objective objective,
        Tensor mask, Tensor advantages, Tensor oldLogProbs, Tensor? entropy)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        long b = mask.shape[0], r = mask.shape[1];
        int w = ranks.WorldSize;
        var shapes = AllGatherValues(ranks, b, r, mask.sum().item<float>());                      // rows, width, valid tokens of every rank
        var rowsOf = Enumerable.Range(0, w).Select(k => (long)shapes[3 * k]).ToArray();
        if (rowsOf.Any(x => x != b))
            throw new InvalidOperationException($"step {ranks.Step}: the ranks hold different shares of the mini-batch (rows per rank: {string.Join(", ", rowsOf)}); every rank takes the same number of whole prompt groups");
        bool withEntropy = entropy is not null, withKlCov = objective.KlCov != null;
        if (!withEntropy && !withKlCov)                                                            // the counts are all there is
        {
            double tokens = Enumerable.Range(0, w).Sum(k => shapes[3 * k + 2]);
            return (new Objective.MiniBatchContext(new Aggregation.Normaliser(tokens, w * b), FSharpOption<double>.None,
                FSharpOption<Regularisers.KlCovStats>.None, FSharpOption<long[]>.None), ranks.Rank * b);
        }
        long width = Enumerable.Range(0, w).Max(k => (long)shapes[3 * k + 1]);
        // [channels, b, width]: the mask, then KL-Cov's old log-probs (0 where masked), then a batch gate's entropies;
        // after them the b advantages
        var local = new List<Tensor> { mask.to(ScalarType.Float32) };
        if (withKlCov) local.Add(where(mask.gt(0), oldLogProbs.to(ScalarType.Float32), zeros_like(oldLogProbs, ScalarType.Float32)));
        if (entropy is not null) local.Add(entropy.to(ScalarType.Float32));
        int channels = local.Count;
        var planes = zeros([channels, b, width], ScalarType.Float32, mask.device);
        for (int c = 0; c < channels; c++) planes[c].narrow(1, 0, r).copy_(local[c]);
        var mine = cat([planes.reshape(-1), advantages.to(ScalarType.Float32).reshape(-1)]);
        var all = ranks.AllGather(mine).view(w, -1);                                               // [W, channels·b·width + b]
        long planeSize = channels * b * width;
        var globalPlanes = all.narrow(1, 0, planeSize).reshape(w, channels, b, width).transpose(0, 1).reshape(channels, w * b, width); // [channels, W·b, width]
        var globalAdvantages = all.narrow(1, planeSize, b).reshape(w * b);                         // [W·b]
        var globalMask = globalPlanes[0];
        var context = Objective.context(objective, globalMask, globalAdvantages, withKlCov ? globalPlanes[1] : zeros_like(globalMask),
            withEntropy ? FSharpOption<Tensor>.Some(globalPlanes[channels - 1]) : FSharpOption<Tensor>.None);
        return (context, ranks.Rank * b);
    }

    /// <summary>Every rank's <paramref name="values"/> (the same count on every rank), concatenated in rank order.</summary>
    static double[] AllGatherValues(ICollective ranks, params double[] values)
    {
        using var t = tensor(values, ScalarType.Float64);
        using var all = ranks.AllGather(t);
        return all.data<double>().ToArray();
    }

    /// <summary>Every rank's master weights (and parameters) become rank 0's. Sharded (<c>shard_optimizer</c>): rank 0's
    /// parameters, from which each rank takes its slice's masters (call it before loading a checkpoint, whose float32
    /// masters every rank then reads itself).</summary>
    public static void BroadcastWeights(ICollective ranks, AdamW optimizer)
    {
        var masters = optimizer.Shard is not null ? optimizer.Parameters() : optimizer.MasterWeights();
        using (no_grad())
            foreach (var (_, w) in masters.OrderBy(x => x.Key, StringComparer.Ordinal))
            {
                using var flat = w.detach().reshape(-1).contiguous();
                ranks.Broadcast(flat, 0);
                w.copy_(flat.view(w.shape));
            }
        optimizer.LoadMasterWeights(masters, "rank 0's weights");
    }

    /// <summary>A float64 sum and sum of squares of every master weight (sharded: of the parameters, which every rank
    /// holds whole), gathered from all ranks; stops the run, naming the ranks, when one differs from rank 0's (the
    /// updates are identical, so the weights are bit-equal).</summary>
    public static void CheckWeights(ICollective ranks, AdamW optimizer, long step)
    {
        double sum = 0, sq = 0;
        using (no_grad())
            foreach (var (_, w) in (optimizer.Shard is not null ? optimizer.Parameters() : optimizer.MasterWeights()).OrderBy(x => x.Key, StringComparer.Ordinal))
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
