using Microsoft.FSharp.Core;
using SimKO.Math;
using TorchSharp;
using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Training;

/// <summary>Settings of one step's updates.</summary>
public sealed record UpdateSettings(int MiniBatches, int MicroBatchSize, int PpoEpochs, double GradClip);

/// <summary>What one step's updates measured (token-weighted means over micro-batches).</summary>
public sealed class UpdateMetrics
{
    public Dictionary<string, double> Values { get; } = new();
    public int SkippedUpdates { get; set; }
    public int Updates { get; set; }
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
    /// <summary>log π(response token) [N, R] under <paramref name="policy"/>, without gradient, micro-batched.</summary>
    public static Tensor LogProbs(IPolicy policy, PackedBatch batch, int microBatchSize)
    {
        using var _ = no_grad();
        var parts = new List<Tensor>();
        long n = batch.Ids.shape[0];
        for (long start = 0; start < n; start += microBatchSize)
        {
            long len = System.Math.Min(microBatchSize, n - start);
            using var scope = NewDisposeScope();
            var logits = batch.ResponseLogits(policy.Logits(batch.Ids.narrow(0, start, len), batch.Attention.narrow(0, start, len)));
            var tokens = batch.ResponseTokens.narrow(0, start, len);
            var lp = logits.to(ScalarType.Float32).log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1);
            parts.Add(lp.MoveToOuterDisposeScope());
        }
        var all = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        return all;
    }

    /// <summary>Run the updates of one step. <paramref name="advantages"/> is [N] (per response),
    /// <paramref name="groupSize"/> responses per prompt, rows grouped consecutively.</summary>
    public static UpdateMetrics Run(Objective.Objective objective, IPolicy policy, AdamW optimizer, double lr,
        PackedBatch batch, Tensor advantages, int groupSize, UpdateSettings settings, Tensor? refLogProbs = null, Tensor? oldLogProbs = null)
    {
        var result = new UpdateMetrics();
        bool ownOld = oldLogProbs is null;
        oldLogProbs ??= LogProbs(policy, batch, settings.MicroBatchSize);
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
                var miniMask = batch.ResponseMask.narrow(0, rowStart, rows);
                var norm = new Aggregation.Normaliser(miniMask.sum().item<float>(), rows);
                optimizer.ZeroGrad();
                bool finite = true;
                for (long m0 = rowStart; m0 < rowStart + rows; m0 += settings.MicroBatchSize)
                {
                    long len = System.Math.Min(settings.MicroBatchSize, rowStart + rows - m0);
                    using var scope = NewDisposeScope();
                    var logits = batch.ResponseLogits(policy.Logits(batch.Ids.narrow(0, m0, len), batch.Attention.narrow(0, m0, len))).to(ScalarType.Float32);
                    var pb = new Objective.PolicyBatch(
                        logits,
                        batch.ResponseTokens.narrow(0, m0, len),
                        oldLogProbs.narrow(0, m0, len),
                        refLogProbs is null ? FSharpOption<Tensor>.None : FSharpOption<Tensor>.Some(refLogProbs.narrow(0, m0, len)),
                        batch.ResponseMask.narrow(0, m0, len),
                        advantages.narrow(0, m0, len).to(ScalarType.Float32),
                        norm);
                    var output = Objective.loss(objective, pb);
                    var lossValue = output.Loss.item<float>();
                    if (!float.IsFinite(lossValue))
                    {
                        finite = false;
                        result.Problems.Add($"epoch {epoch}, rows {m0}..{m0 + len - 1}: loss is {lossValue}");
                        break;
                    }
                    output.Loss.backward();
                    Accumulate(sums, output.Metrics, ref tokenWeight);
                }
                double gradNorm = double.NaN;
                if (finite)
                {
                    gradNorm = nn.utils.clip_grad_norm_(policy.NamedParameters.Select(p => p.Param), settings.GradClip);
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
        foreach (var (k, v) in sums)
            result.Values[k] = k == "grad_norm" ? v / System.Math.Max(1, result.Updates) : v / System.Math.Max(1e-9, tokenWeight);
        if (ownOld) oldLogProbs.Dispose();
        return result;
    }

    static void Accumulate(Dictionary<string, double> sums, Objective.LossMetrics m, ref double weight)
    {
        var w = m.Tokens;
        weight += w;
        foreach (var (name, value) in Objective.metricValues(m)) Add(sums, name, value * w);
    }

    static void Add(Dictionary<string, double> d, string k, double v) => d[k] = d.GetValueOrDefault(k) + v;
}
