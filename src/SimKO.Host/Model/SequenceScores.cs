using static TorchSharp.torch;

namespace SimKO.Host.Model;

/// <summary>Per-token log-probs of whole sequences under a policy: log p(ids[t] | ids[:t]) for t ≥ 1,
/// at temperature 1 (what <c>simko score</c> writes and the stale-weight probe compares).</summary>
public static class SequenceScores
{
    /// <summary>One value per token after the first (length ids.Length − 1).</summary>
    public static float[] LogProbs(IPolicy policy, int[] ids)
    {
        if (ids.Length < 2) return [];
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var input = tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length], device: policy.Device);    // (1, T)
        var logits = policy.Logits(input, ones_like(input)).to(ScalarType.Float32);                         // (1, T, V)
        var logp = logits.narrow(1, 0, ids.Length - 1).log_softmax(-1)
            .gather(-1, input.narrow(1, 1, ids.Length - 1).unsqueeze(-1)).squeeze(-1);                      // (1, T-1)
        return logp.cpu().data<float>().ToArray();
    }
}
