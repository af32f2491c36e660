using System.Diagnostics;
using Microsoft.Extensions.Logging;
using SimKO.Host.Batches;
using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Training;

/// <summary>Settings of the supervised warm-start that builds a base model.</summary>
public sealed record WarmStartSettings(int Steps, int BatchSize, double LearningRate, double Beta1, double Beta2, double GradClip, int Seed);

/// <summary>
/// Supervised warm-start (a stand-in for pretraining): cross-entropy on response tokens of
/// (prompt, target) pairs drawn by <c>example(rng)</c>. With targets that are sometimes right and
/// sometimes wrong, the base model samples diverse, partly correct answers, like a pretrained LLM
/// (REPRODUCTION-NOTES).
/// </summary>
public static class WarmStart
{
    public static double Run(IPolicy policy, Func<Random, (int[] Prompt, int[] Target)> example, int padId,
        WarmStartSettings s, ILogger log)
    {
        var optimizer = new AdamW(policy.NamedParameters.Select(p => (p.Name, (Tensor)p.Param)).ToList(), s.Beta1, s.Beta2, 1e-8, 0.0);
        var rng = new Random(s.Seed);
        var clock = Stopwatch.StartNew();
        double emaLoss = double.NaN;
        policy.SetTraining(true);
        for (int step = 0; step < s.Steps; step++)
        {
            using var scope = NewDisposeScope();
            var samples = Enumerable.Range(0, s.BatchSize).Select(_ => { var (p, t) = example(rng); return new Sample(0, p, t, 0); }).ToList();
            using var batch = PackedBatch.Pack(samples, padId, policy.Device);
            var logits = batch.ResponseLogits(policy.Logits(batch.Ids, batch.Attention)).to(ScalarType.Float32);   // [B, R, V]
            var logp = logits.log_softmax(-1).gather(-1, batch.ResponseTokens.unsqueeze(-1)).squeeze(-1);        // [B, R]
            var loss = -(logp * batch.ResponseMask).sum() / batch.ResponseMask.sum();
            optimizer.ZeroGrad();
            loss.backward();
            var norm = nn.utils.clip_grad_norm_(policy.NamedParameters.Select(p => p.Param), s.GradClip);
            var value = loss.item<float>();
            if (!float.IsFinite(value) || !double.IsFinite(norm))
                throw new InvalidOperationException($"warm-start step {step}: loss {value}, gradient norm {norm}");
            optimizer.Step(s.LearningRate);
            emaLoss = double.IsNaN(emaLoss) ? value : 0.95 * emaLoss + 0.05 * value;
            if ((step + 1) % System.Math.Max(1, s.Steps / 10) == 0 || step + 1 == s.Steps)
            {
                var perStep = clock.Elapsed.TotalSeconds / (step + 1);
                log.LogInformation("warm-start step {Step}/{Total}: loss {Loss:F3} ({PerStep:F3} s/step, ETA {Eta:mm\\:ss})",
                    step + 1, s.Steps, emaLoss, perStep, TimeSpan.FromSeconds(perStep * (s.Steps - step - 1)));
            }
        }
        policy.SetTraining(false);
        return emaLoss;
    }
}
