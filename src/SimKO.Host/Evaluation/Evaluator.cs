using System.Diagnostics;
using Microsoft.Extensions.Logging;
using SimKO.Host.Batches;
using SimKO.Host.Model;
using SimKO.Host.Rollout;
using SimKO.Data.Rewards;
using SimKO.Math;
using static TorchSharp.torch;

namespace SimKO.Host.Evaluation;

/// <summary>A problem to evaluate: prompt ids and a judge of a response (correct?, extracted answer for maj@n).</summary>
public sealed record EvalProblem(string Id, int[] PromptIds, Func<int[], (bool Correct, string? Answer)> Judge);

/// <summary>Sampling settings of an evaluation (the paper's: n 256, temperature 0.6, top-p 0.95).</summary>
public sealed record EvalSettings(int Samples, double Temperature, double TopP, int TopK, int MaxNewTokens, int Seed, int PromptsPerBatch)
{
    /// <summary>Token ids that end a response (the task's end token, the model's EOS ids).</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    /// <summary>Texts that end a response (code tasks).</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
}

/// <summary>
/// pass@K evaluation: n samples per problem from any rollout engine, judged by the task's verifier,
/// reduced to per-problem (n, c, majority-correct). Problems are sampled in chunks so memory stays
/// bounded; every chunk's seed comes from (seed, chunk) so results do not depend on timing.
/// </summary>
public static class Evaluator
{
    public static BenchmarkResult Run(string benchmark, IReadOnlyList<EvalProblem> problems,
        IRolloutEngine engine, EvalSettings s, ILogger log,
        List<Generated>? keepSamples = null, Action<IReadOnlyList<(int Problem, int[] Response)>>? prefetch = null,
        Func<IReadOnlyList<(int Problem, int[] Response)>, IReadOnlyList<RewardResult>>? rewardResults = null)
    {
        var rewards = rewardResults is null ? null : new List<RewardResult>();
        var outcomes = new List<ProblemOutcome>(problems.Count);
        var clock = Stopwatch.StartNew();
        long tokens = 0;
        int chunkIndex = 0;
        for (int start = 0; start < problems.Count; start += s.PromptsPerBatch, chunkIndex++)
        {
            var chunk = problems.Skip(start).Take(s.PromptsPerBatch).ToList();
            var request = new GenerateRequest(chunk.Select(p => p.PromptIds).ToList(), s.Samples, s.Temperature, s.TopP, s.TopK,
                s.MaxNewTokens, Seeds.Mix(s.Seed, 0xE7A1, chunkIndex)) { StopTokenIds = s.StopTokenIds, StopStrings = s.StopStrings };
            var generated = engine.Generate(request);
            var judgedItems = generated.Select(g => (start + g.PromptIndex, g.Tokens)).ToList();
            prefetch?.Invoke(judgedItems);
            rewards?.AddRange(rewardResults!(judgedItems));
            foreach (var group in generated.GroupBy(g => g.PromptIndex).OrderBy(g => g.Key))
            {
                var p = chunk[group.Key];
                var judged = group.Select(g => p.Judge(g.Tokens)).ToList();
                if (judged.Count != s.Samples)
                    throw new InvalidOperationException($"{benchmark}/{p.Id}: {judged.Count} samples came back, expected {s.Samples}");
                int c = judged.Count(j => j.Correct);
                bool maj = PassAtK.majorityCorrect(judged.Select(j => Tuple.Create(
                    j.Answer is null ? Microsoft.FSharp.Core.FSharpOption<string>.None : Microsoft.FSharp.Core.FSharpOption<string>.Some(j.Answer), j.Correct)));
                outcomes.Add(new ProblemOutcome(p.Id, s.Samples, c, maj));
                tokens += group.Sum(g => g.Tokens.Length);
            }
            if (keepSamples is not null)
                keepSamples.AddRange(generated.Select(g => g with { PromptIndex = start + g.PromptIndex }));
            var done = System.Math.Min(start + s.PromptsPerBatch, problems.Count);
            var rate = tokens / System.Math.Max(1e-9, clock.Elapsed.TotalSeconds);
            var eta = TimeSpan.FromSeconds((problems.Count - done) * clock.Elapsed.TotalSeconds / done);
            log.LogInformation("eval {Benchmark}: {Done}/{Total} problems, {Rate:F0} tokens/s, ETA {Eta:hh\\:mm\\:ss}",
                benchmark, done, problems.Count, rate, eta);
        }
        return new BenchmarkResult(benchmark, outcomes) { RewardMetrics = rewards is null ? null : RewardFunction.Metrics(rewards) };
    }

    /// <summary>Entropy of the policy at every response token of the given samples (Figure 6).</summary>
    public static double[] TokenEntropies(IPolicy policy, IReadOnlyList<(int[] Prompt, int[] Response)> samples, int padId, int microBatch = 64)
    {
        var all = new List<double>();
        for (int start = 0; start < samples.Count; start += microBatch)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var chunk = samples.Skip(start).Take(microBatch).Select(x => new Sample(0, x.Prompt, x.Response, 0)).ToList();
            if (chunk.All(x => x.Response.Length == 0)) continue;
            using var batch = PackedBatch.Pack(chunk, padId, policy.Device);
            var logits = batch.ResponseLogits(policy.Logits(batch.Ids, batch.Attention)).to(ScalarType.Float32);
            var stats = TokenStats.compute(1, logits, batch.ResponseTokens);
            var h = stats.Entropy.masked_select(batch.ResponseMask.gt(0)).to(ScalarType.Float64).cpu();
            all.AddRange(h.data<double>().ToArray());
        }
        return all.ToArray();
    }
}
