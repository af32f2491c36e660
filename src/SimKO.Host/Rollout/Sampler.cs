using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Rollout;

/// <summary>
/// One sampling step over a batch of next-token logits: temperature, top-k, top-p, then a draw
/// from a <see cref="Generator"/> (never torch's global RNG).
/// </summary>
public static class Sampler
{
    /// <summary>
    /// The log-distribution sampling draws from: <c>log_softmax</c> of the logits divided by the
    /// temperature, with tokens outside the top-k and outside the top-p nucleus at −∞.
    /// </summary>
    /// <param name="logits"><c>[B, V]</c> float32</param>
    /// <returns><c>[B, V]</c> float32 log-probabilities (−∞ on removed tokens)</returns>
    public static Tensor SamplingLogProbs(Tensor logits, SamplingSettings s)
    {
        long v = logits.shape[1];
        using var scaled = logits.div(s.Temperature);                               // [B, V]
        Tensor z = scaled.alias();
        if (s.TopK > 0 && s.TopK < v)
        {
            var (top, topIdx) = z.topk(s.TopK, dim: -1);                            // [B, K] each
            using (top)
            using (topIdx)
            using (var kth = top.narrow(1, s.TopK - 1, 1))                          // [B, 1]
            using (var below = z.lt(kth))                                           // [B, V]
            {
                var next = z.masked_fill(below, float.NegativeInfinity);
                z.Dispose();
                z = next;
            }
        }
        if (s.TopP < 1.0)
        {
            var (sorted, order) = z.sort(dim: -1, descending: true);                // [B, V] each
            using (sorted)
            using (order)
            using (var probs = sorted.softmax(-1))
            using (var cum = probs.cumsum(-1))
            using (var before = cum.sub(probs))                                     // mass strictly before each token
            using (var drop = before.ge(s.TopP))                                    // the first token always stays
            using (var kept = sorted.masked_fill(drop, float.NegativeInfinity))
            {
                var next = torch.full_like(z, float.NegativeInfinity).scatter_(-1, order, kept);
                z.Dispose();
                z = next;
            }
        }
        using (z) return z.log_softmax(-1);
    }

    /// <summary>
    /// Draws one token per row.
    /// </summary>
    /// <param name="logits"><c>[B, V]</c> float32 next-token logits</param>
    /// <param name="generator">the sampling generator, on the logits' device</param>
    /// <returns>tokens <c>[B]</c> int64 and their log-probabilities <c>[B]</c> float32 under the
    /// sampling distribution (0 for greedy)</returns>
    public static (Tensor Tokens, Tensor LogProbs) Sample(Tensor logits, SamplingSettings s, Generator generator)
    {
        if (s.Temperature == 0)
        {
            var greedy = logits.argmax(-1);                                        // [B]
            return (greedy, torch.zeros([logits.shape[0]], ScalarType.Float32, logits.device));
        }
        using var logp = SamplingLogProbs(logits, s);                               // [B, V]
        using var p = logp.exp();
        using var drawn = p.multinomial(1, false, generator);                      // [B, 1]
        using var lp = logp.gather(-1, drawn);                                     // [B, 1]
        return (drawn.squeeze(-1), lp.squeeze(-1));
    }
}
