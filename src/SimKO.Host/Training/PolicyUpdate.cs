using Microsoft.FSharp.Core;
using SimKO.Math;
using SimKO.Host.Batches;
using SimKO.Host.Collective;
using TorchSharp;
using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Training;

/// <summary>Settings of one step's updates.</summary>
/// <param name="MaxTokensPerMicroBatch">fill micro-batches up to this many (padded) tokens, rows sorted
/// by length and padding trimmed to each micro-batch (0: <paramref name="MicroBatchSize"/> rows each)</param>
/// <param name="LogitsChunkTokens">tokens per chunk of the fused LM head (0: whole logits)</param>
public sealed record UpdateSettings(int MiniBatches, int MicroBatchSize, int PpoEpochs, double GradClip,
    int MaxTokensPerMicroBatch = 0, int LogitsChunkTokens = 0, ICollective? Collective = null);

/// <summary>What one step's updates measured (token-weighted means over micro-batches).</summary>
public sealed class UpdateMetrics
{
    public Dictionary<string, double> Values { get; } = new();
    public int SkippedUpdates { get; set; }
    public int Updates { get; set; }
    /// <summary>Real (non-padding) tokens forwarded by the updates, over all epochs.</summary>
    public long RealTokens { get; set; }
    public List<string> Problems { get; } = new();
}

/// <summary>
/// The update half of a training step (SPEC §2, §8): old log-probs recomputed by the trainer,
/// then PPO epochs over mini-batches of whole groups, each accumulated over micro-batches whose
/// losses are normalised by the mini-batch's global token and sequence counts — so the gradient
/// does not depend on the micro-batch size. A NaN/Inf loss or gradient skips that update.
/// </summary>
public static class PolicyUpdate
{
    /// <summary>log π(response token) [N, R] under <paramref name="policy"/>, without gradient, in
    /// micro-batches of <paramref name="microBatchSize"/> rows or of <paramref name="maxTokens"/>
    /// tokens; through the fused LM head in chunks of <paramref name="logitsChunk"/> tokens when given.</summary>
    public static Tensor LogProbs(IPolicy policy, PackedBatch batch, int microBatchSize, int maxTokens = 0, int logitsChunk = 0)
    {
        using var _ = no_grad();
        long n = batch.Ids.shape[0];
        var all = zeros([n, batch.ResponseLength], ScalarType.Float32, batch.Ids.device);
        var lengths = MicroBatches.Lengths(batch);
        foreach (var rows in MicroBatches.Split(Enumerable.Range(0, (int)n).ToArray(), lengths, microBatchSize, maxTokens))
        {
            using var scope = NewDisposeScope();
            var index = tensor(rows.Select(r => (long)r).ToArray(), device: batch.Ids.device);
            using var sub = batch.Select(index, trim: maxTokens > 0);
            var tokens = Objective.validTokens(sub.ResponseTokens, sub.ResponseMask);
            var lp = Statistics(policy, sub, tokens, 1, logitsChunk)?.LogProbs
                     ?? sub.ResponseLogits(policy.Logits(sub.Ids, sub.Attention)).to(ScalarType.Float32).log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1);
            all.narrow(1, 0, sub.ResponseLength).index_copy_(0, index, lp);                  // [N, r] rows of this micro-batch
        }
        return all;
    }

    /// <summary>Token statistics through the fused, chunked LM head when <paramref name="chunk"/> > 0 and
    /// the policy exposes its hidden states; null otherwise (the caller takes whole logits).</summary>
    static TokenStats.TokenStats? Statistics(IPolicy policy, PackedBatch sub, Tensor tokens, int k, int chunk)
    {
        if (chunk <= 0) return null;
        var exposed = policy.HiddenAndHead(sub.Ids, sub.Attention);
        if (exposed is null) return null;
        var (hidden, head) = exposed.Value;
        var response = sub.ResponseLogits(hidden);                                          // [B, R, d] response positions only
        return LmHead.tokenStats(chunk, System.Math.Min(k, (int)head.shape[0]), response, head, tokens);
    }

    /// <summary>Run the updates of one step. <paramref name="advantages"/> is [N] (per response),
    /// <paramref name="groupSize"/> responses per prompt, rows grouped consecutively.</summary>
    public static UpdateMetrics Run(Objective.Objective objective, IPolicy policy, AdamW optimizer, double lr,
        PackedBatch batch, Tensor advantages, int groupSize, UpdateSettings settings, Tensor? refLogProbs = null, Tensor? oldLogProbs = null)
    {
        var result = new UpdateMetrics();
        var ranks = settings.Collective is { WorldSize: > 1 } c ? c : null;
        bool ownOld = oldLogProbs is null;
        oldLogProbs ??= LogProbs(policy, batch, settings.MicroBatchSize, settings.MaxTokensPerMicroBatch, settings.LogitsChunkTokens);
        long realTokens = 0, paddedTokens = 0;
        long n = batch.Ids.shape[0];
        long groups = n / groupSize;
        long groupsPerMini = System.Math.Max(1, groups / settings.MiniBatches);
        var sums = new Dictionary<string, double>();
        double tokenWeight = 0;
        policy.SetTraining(true);
        for (int epoch = 0; epoch < settings.PpoEpochs; epoch++)
        {
            for (long g0 = 0; g0 < groups; g0 += groupsPerMini)
            {
                long rowStart = g0 * groupSize, rows = System.Math.Min(groupsPerMini, groups - g0) * groupSize;
                optimizer.ZeroGrad();
                bool finite = AccumulateGradient(objective, policy, batch, advantages, oldLogProbs, refLogProbs, rowStart, rows,
                    settings.MicroBatchSize, m => Accumulate(sums, m, ref tokenWeight), problem => result.Problems.Add($"epoch {epoch}, {problem}"),
                    settings.MaxTokensPerMicroBatch, settings.LogitsChunkTokens, optimizer, (real, padded) => { realTokens += real; paddedTokens += padded; }, ranks);
                if (ranks is not null && SumOverRanks(ranks, finite ? 0 : 1)[0] > 0 && finite)
                {
                    finite = false;                                     // every rank skips the update together
                    result.Problems.Add($"epoch {epoch}, mini-batch at row {rowStart}: another rank's loss is not finite");
                }
                double gradNorm = double.NaN;
                if (finite)
                {
                    gradNorm = optimizer.ClipGradients(settings.GradClip);
                    if (!double.IsFinite(gradNorm))
                    {
                        finite = false;
                        result.Problems.Add($"epoch {epoch}, mini-batch at row {rowStart}: gradient norm is {gradNorm}");
                    }
                }
                if (finite)
                {
                    optimizer.Step(lr);
                    result.Updates++;
                    Add(sums, "grad_norm", gradNorm);
                }
                else result.SkippedUpdates++;
                optimizer.ZeroGrad();
            }
        }
        policy.SetTraining(false);
        if (ranks is not null)
        {
            // token-weighted metric sums, their weight and the token counts of every rank (same keys on every rank)
            var keys = sums.Keys.Where(k => k != "grad_norm").OrderBy(k => k, StringComparer.Ordinal).ToList();
            var total = SumOverRanks(ranks, [.. keys.Select(k => sums[k]), tokenWeight, realTokens, paddedTokens]);
            for (int i = 0; i < keys.Count; i++) sums[keys[i]] = total[i];
            tokenWeight = total[keys.Count]; realTokens = (long)total[keys.Count + 1]; paddedTokens = (long)total[keys.Count + 2];
        }
        foreach (var (k, v) in sums)
            result.Values[k] = k == "grad_norm" ? v / System.Math.Max(1, result.Updates) : v / System.Math.Max(1e-9, tokenWeight);
        result.Values["padding_fraction"] = paddedTokens == 0 ? 0 : 1 - (double)realTokens / paddedTokens;
        result.RealTokens = realTokens;
        if (ownOld) oldLogProbs.Dispose();
        return result;
    }

    /// <summary>Add to the parameters' gradients (without zeroing, clipping or stepping) the gradient of
    /// the mini-batch of rows [<paramref name="rowStart"/>, <paramref name="rowStart"/> + <paramref name="rows"/>),
    /// one micro-batch of <paramref name="microBatchSize"/> rows at a time. Every micro-batch's loss is
    /// normalised by the mini-batch's token and sequence counts and gated with the mini-batch's batch
    /// threshold (<see cref="BatchThreshold"/>), so the sum does not depend on the micro-batch size
    /// (SPEC §7.8, §7.11). Returns false, after reporting the problem, at the first loss that is not finite.</summary>
    /// <param name="advantages">[N] per response, for all rows of <paramref name="batch"/>.</param>
    /// <param name="oldLogProbs">[N, R] log π_old of the response tokens.</param>
    /// <param name="refLogProbs">[N, R] log π_ref, or null when there is no KL penalty.</param>
    /// <param name="onMetrics">called with each micro-batch's metrics.</param>
    /// <param name="onProblem">called with "rows a..b: loss is NaN" when a micro-batch's loss is not finite.</param>
    /// <param name="maxTokens">token budget of a micro-batch (rows sorted by length, padding trimmed; 0: <paramref name="microBatchSize"/> rows)</param>
    /// <param name="logitsChunk">tokens per chunk of the fused LM head (0: whole logits)</param>
    /// <param name="optimizer">when given, its float32 gradient sums take each micro-batch's gradients (mixed precision, offload)</param>
    /// <param name="onTokens">called with each micro-batch's real and padded token counts</param>
    public static bool AccumulateGradient(Objective.Objective objective, IPolicy policy, PackedBatch batch, Tensor advantages,
        Tensor oldLogProbs, Tensor? refLogProbs, long rowStart, long rows, int microBatchSize,
        Action<Objective.LossMetrics> onMetrics, Action<string> onProblem,
        int maxTokens = 0, int logitsChunk = 0, AdamW? optimizer = null, Action<long, long>? onTokens = null, ICollective? ranks = null)
    {
        var (context, rowOffset) = Context(objective, policy, batch, advantages, oldLogProbs, rowStart, rows, microBatchSize, maxTokens, logitsChunk, ranks);
        var miniRows = Enumerable.Range((int)rowStart, (int)rows).ToArray();
        var micro = MicroBatches.Split(miniRows, MicroBatches.Lengths(batch), microBatchSize, maxTokens);
        // a sharded optimizer with masters reduce-scatters each micro-batch's gradients (a collective): every rank
        // accumulates as often as the rank with the most micro-batches (token budgets cut ranks' rows differently),
        // the extra times with zero gradients, and a rank whose loss is not finite goes on accumulating zeros
        int calls = optimizer?.Shard is { Master: not null, Ranks.WorldSize: > 1 } shard ? MaxOverRanks(shard.Ranks, micro.Count) : 0, accumulated = 0;
        void Even() { for (; accumulated < calls; accumulated++) optimizer!.AccumulateGradients(); }
        foreach (var mb in micro)
        {
            using var scope = NewDisposeScope();
            var index = tensor(mb.Select(r => (long)r).ToArray(), device: batch.Ids.device);
            using var sub = batch.Select(index, trim: maxTokens > 0);
            long width = sub.ResponseLength;
            onTokens?.Invoke(sub.Attention.sum().item<long>(), sub.Ids.numel());
            var pb = new Objective.PolicyBatch(
                Objective.noLogits,
                sub.ResponseTokens,
                oldLogProbs.index_select(0, index).narrow(1, 0, width),
                refLogProbs is null ? FSharpOption<Tensor>.None : FSharpOption<Tensor>.Some(refLogProbs.index_select(0, index).narrow(1, 0, width)),
                sub.ResponseMask,
                advantages.index_select(0, index).to(ScalarType.Float32),
                new Objective.MiniBatchContext(context.Normaliser, context.BatchThreshold, context.KlCov,
                    FSharpOption<long[]>.Some(mb.Select(r => rowOffset + r - rowStart).ToArray())));
            var stats = Statistics(policy, sub, Objective.validTokens(sub.ResponseTokens, sub.ResponseMask), Objective.topKNeeded(objective), logitsChunk);
            var output = stats is not null
                ? Objective.lossOfStats(objective, stats, pb)
                : Objective.loss(objective, new Objective.PolicyBatch(sub.ResponseLogits(policy.Logits(sub.Ids, sub.Attention)).to(ScalarType.Float32),
                    pb.Tokens, pb.OldLogProbs, pb.RefLogProbs, pb.Mask, pb.Advantages, pb.Context));
            var lossValue = output.Loss.item<float>();
            if (!float.IsFinite(lossValue))
            {
                onProblem(mb.Length > 0 && mb[^1] - mb[0] == mb.Length - 1
                    ? $"rows {mb[0]}..{mb[^1]}: loss is {lossValue}"
                    : $"rows {string.Join(",", mb.Take(8))}{(mb.Length > 8 ? ",…" : "")}: loss is {lossValue}");
                Even();
                return false;
            }
            output.Loss.backward();
            optimizer?.AccumulateGradients();
            accumulated++;
            onMetrics(output.Metrics);
        }
        Even();
        return true;
    }

    /// <summary>The largest of every rank's <paramref name="value"/> (one all-gather).</summary>
    static int MaxOverRanks(ICollective ranks, int value)
    {
        using var t = tensor(new[] { (double)value }, ScalarType.Float64);
        using var all = ranks.AllGather(t);
        return (int)all.data<double>().Max();
    }

    /// <summary>The statistics pass of the mini-batch of rows [<paramref name="rowStart"/>, <paramref name="rowStart"/> + <paramref name="rows"/>):
    /// its counts, the τ of a batch-level entropy gate and KL-Cov's means and cut-off, computed once over
    /// the whole mini-batch and handed to every micro-batch (<see cref="Objective.context"/>, SPEC §7.11).
    /// KL-Cov's statistics come from the advantages and old log-probs (no forward pass); only a batch-level
    /// gate forwards the current policy, through <see cref="BatchEntropy"/>. With several ranks these rows
    /// are this rank's share of the global mini-batch, whose context is taken over every rank's share
    /// (<see cref="DataParallel.GlobalContext"/>); the row offset is the index of this rank's first row in it.</summary>
    public static (Objective.MiniBatchContext Context, long RowOffset) Context(Objective.Objective objective, IPolicy policy, PackedBatch batch, Tensor advantages,
        Tensor oldLogProbs, long rowStart, long rows, int microBatchSize, int maxTokens = 0, int logitsChunk = 0, ICollective? ranks = null)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var mask = batch.ResponseMask.narrow(0, rowStart, rows);
        var entropy = Objective.needsEntropy(objective) ? BatchEntropy(policy, batch, rowStart, rows, microBatchSize, maxTokens, logitsChunk) : null;
        var adv = advantages.narrow(0, rowStart, rows).to(ScalarType.Float32);
        var old = oldLogProbs.narrow(0, rowStart, rows).to(ScalarType.Float32);
        if (ranks is { WorldSize: > 1 }) return DataParallel.GlobalContext(ranks, objective, mask, adv, old, entropy);
        return (Objective.context(objective, mask, adv, old, entropy is null ? FSharpOption<Tensor>.None : FSharpOption<Tensor>.Some(entropy)), 0);
    }

    /// <summary>τ of a batch-level entropy gate over every valid response token of the mini-batch (None for the
    /// other gates, which need no forward pass).</summary>
    public static FSharpOption<double> BatchThreshold(Gates.EntropyGate gate, IPolicy policy, PackedBatch batch, long rowStart, long rows,
        int microBatchSize, int maxTokens = 0, int logitsChunk = 0)
    {
        if (!gate.IsBatchQuantile) return FSharpOption<double>.None;
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return Gates.batchThreshold(gate, BatchEntropy(policy, batch, rowStart, rows, microBatchSize, maxTokens, logitsChunk),
            batch.ResponseMask.narrow(0, rowStart, rows));
    }

    /// <summary>Entropy [rows, R] of the current policy at every response position of the mini-batch, without
    /// gradient, in the very micro-batches of the loss (<see cref="MicroBatches.Split"/> with the same row count
    /// and token budget, so the entropies are the loss's own) and through the fused LM head in chunks of
    /// <paramref name="logitsChunk"/> tokens when given: at most one micro-batch's [b, r, d] hidden states and
    /// one chunk's [c, V] logits exist at a time, never [rows, R, V]. Without a chunk (or a policy that does
    /// not expose its hidden states) one micro-batch's logits, as the loss itself takes them.</summary>
    public static Tensor BatchEntropy(IPolicy policy, PackedBatch batch, long rowStart, long rows, int microBatchSize, int maxTokens = 0, int logitsChunk = 0)
    {
        using var _ = no_grad();
        var all = zeros([rows, batch.ResponseLength], ScalarType.Float32, batch.Ids.device);
        var miniRows = Enumerable.Range((int)rowStart, (int)rows).ToArray();
        foreach (var mb in MicroBatches.Split(miniRows, MicroBatches.Lengths(batch), microBatchSize, maxTokens))
        {
            using var micro = NewDisposeScope();                                        // activations die per micro-batch
            var index = tensor(mb.Select(r => (long)r).ToArray(), device: batch.Ids.device);
            using var sub = batch.Select(index, trim: maxTokens > 0);
            var tokens = Objective.validTokens(sub.ResponseTokens, sub.ResponseMask);  // entropy does not depend on them
            var entropy = Statistics(policy, sub, tokens, 1, logitsChunk)?.Entropy
                          ?? TokenStats.compute(1, sub.ResponseLogits(policy.Logits(sub.Ids, sub.Attention)).to(ScalarType.Float32), tokens).Entropy;
            all.narrow(1, 0, sub.ResponseLength).index_copy_(0, index - rowStart, entropy.to(ScalarType.Float32));
        }
        return all;
    }

    /// <summary>Each value summed over the ranks (one float64 all-reduce).</summary>
    public static double[] SumOverRanks(ICollective ranks, params double[] values)
    {
        using var t = tensor(values, ScalarType.Float64);
        ranks.AllReduce(t);
        return t.data<double>().ToArray();
    }

    static void Accumulate(Dictionary<string, double> sums, Objective.LossMetrics m, ref double weight)
    {
        var w = m.Tokens;
        weight += w;
        foreach (var (name, value) in Objective.metricValues(m)) Add(sums, name, value * w);
    }

    static void Add(Dictionary<string, double> d, string k, double v) => d[k] = d.GetValueOrDefault(k) + v;
}
