using static TorchSharp.torch;

namespace SimKO.Host.Rollout;

/// <summary>Per-sequence seeds shared by both in-process batching modes, <c>simko serve</c> and the
/// server client, so that the same run seed gives the same tokens whichever of them samples: prompt i
/// of a request gets <c>Prompt(seed, i)</c> (sent to a server as that prompt's request <c>seed</c>), and
/// sample j of a prompt gets <c>Sample(promptSeed, j)</c> (what <c>simko serve</c> derives from a
/// request's seed and n). A sequence's stream thus depends on (run seed, step, prompt index, sample
/// index) only (the trainer mixes the step into the request seed), never on the batch it lands in.</summary>
public static class RolloutSeeds
{
    /// <summary>A non-negative 31-bit seed (fits every server's seed field).</summary>
    public static long Prompt(long requestSeed, int promptIndex) => Seeds.Mix(requestSeed, 0x5E7D, promptIndex) & 0x7FFFFFFF;
    public static long Sample(long promptSeed, int sampleIndex) => Seeds.Mix(promptSeed, 0x5A4D, sampleIndex);
    /// <summary>The seed of sample <paramref name="sampleIndex"/> of prompt <paramref name="promptIndex"/> of a request.</summary>
    public static long Sequence(long requestSeed, int promptIndex, int sampleIndex) => Sample(Prompt(requestSeed, promptIndex), sampleIndex);
}

/// <summary>One sequence's own random stream: SplitMix64 of its seed, one uniform per sampled token.</summary>
public sealed class SequenceRng(long seed)
{
    ulong _state = (ulong)seed;

    /// <summary>A uniform in (0, 1).</summary>
    public double NextUniform()
    {
        unchecked
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return ((z >> 11) + 0.5) / (1UL << 53);
        }
    }
}

/// <summary>The sampling distribution of one sequence: temperature (0 = greedy), top-k (0 = off),
/// top-p (1 = off), applied in that order.</summary>
public readonly record struct TokenFilter(double Temperature, int TopK, double TopP);

/// <summary>
/// The one token sampler of every engine (static and continuous batching, hence <c>simko serve</c>):
/// logits / temperature, then top-k (every token tied with the k-th value is kept, as HF's and vLLM's
/// filters do), then top-p (a token is kept while the mass of the tokens before it, in descending
/// order, is below p, so the token that crosses p is kept, as in HF and vLLM; ties are ordered by
/// token id, so the cut is deterministic), renormalised; then inverse-CDF sampling with one uniform
/// from each sequence's own <see cref="SequenceRng"/>, so a sequence's tokens do not depend on the
/// other rows of its batch.
/// </summary>
public static class TokenSampler
{
    /// <summary>Logits [G, V] (already divided by the temperature) with every token outside the top-k
    /// and outside the top-p nucleus set to −∞. topK 0 and topP 1 leave the logits as they are.</summary>
    public static Tensor Filtered(Tensor z, int topK, double topP)
    {
        if (topK > 0 && topK < z.shape[1])
        {
            var (vals, _) = z.topk(topK, dim: -1);                                                    // (G, k)
            z = z.masked_fill(z.lt(vals.narrow(1, topK - 1, 1)), double.NegativeInfinity);
        }
        if (topP < 1.0)
        {
            var (sorted, order) = z.sort(-1, descending: true, stable: true);                        // (G, V): ties by token id
            var probs = sorted.softmax(-1);
            var removeSorted = (probs.cumsum(-1) - probs).ge(topP);                                  // mass before ≥ p: cut
            var remove = zeros_like(removeSorted).scatter(-1, order, removeSorted);
            z = z.masked_fill(remove, double.NegativeInfinity);
        }
        return z;
    }

    /// <summary>Logits [G, V] restricted to ids below <paramref name="vocabLimit"/> (0 or ≥ V: all): the columns
    /// beyond it are dropped, which is masking them to −∞ (they can never be chosen, softmax ignores them),
    /// without the work of filtering or sampling over them.</summary>
    public static Tensor MaskBeyond(Tensor logits, int vocabLimit) =>
        vocabLimit > 0 && vocabLimit < logits.shape[1] ? logits.narrow(1, 0, vocabLimit) : logits;

    /// <summary>Probabilities [G, V] of the distribution one sampling filter (temperature &gt; 0) samples from.</summary>
    public static Tensor Probabilities(Tensor logits, TokenFilter f) =>
        Filtered(f.Temperature == 1 ? logits : logits / f.Temperature, f.TopK, f.TopP).softmax(-1);   // x / 1 is x: no pass over [G, V]

    /// <summary>Sample one token per row from logits [S, V] (float32), row k with <paramref name="filters"/>[k]
    /// and one uniform from <paramref name="rngs"/>[k] (greedy rows draw none). Returns the tokens and their
    /// log-probs under the distribution sampled from (greedy rows: under the raw model); one host
    /// round-trip per distinct filter. Ids ≥ <paramref name="vocabLimit"/> (the tokenizer's size, when the
    /// model's vocabulary is larger, as in every real Qwen model) are masked (their logits −∞, as vLLM masks
    /// them), so they are never sampled and hold no probability mass; 0 = the whole vocabulary.</summary>
    public static (int[] Tokens, float[] LogProbs) Sample(Tensor logits, IReadOnlyList<TokenFilter> filters, IReadOnlyList<SequenceRng> rngs, int vocabLimit = 0)
    {
        int s = filters.Count;
        if (logits.shape[0] != s || rngs.Count != s)
            throw new ArgumentException($"logits have {logits.shape[0]} rows for {s} filters and {rngs.Count} generators");
        var tokens = new int[s];
        var logps = new float[s];
        using var scope = NewDisposeScope();
        logits = MaskBeyond(logits, vocabLimit);
        var device = logits.device;
        var groups = Enumerable.Range(0, s).GroupBy(k => filters[k]).Select(g => g.ToArray()).ToList();   // one group: no row gather
        foreach (var idx in groups)
        {
            var f = filters[idx[0]];
            var z = groups.Count == 1 ? logits : logits.index_select(0, tensor(idx.Select(i => (long)i).ToArray(), device: device));   // (G, V)
            long v = z.shape[1];
            Tensor chosen, logp;                                                                      // (G, 1) each
            if (f.Temperature == 0)
            {
                chosen = z.argmax(-1, keepdim: true);
                logp = z.log_softmax(-1).gather(-1, chosen);
            }
            else
            {
                // one softmax pass (its exp is fused): at 16 × 32,000 a log-softmax and a separate exp took 0.65 ms, a softmax 0.15
                var probs = Probabilities(z, f);                                                      // (G, V)
                var cdf = probs.cumsum(-1);                                                           // (G, V)
                var u = tensor(idx.Select(i => (float)rngs[i].NextUniform()).ToArray(), [idx.Length, 1], device: device);   // (G, 1)
                var target = u.mul_(cdf.narrow(1, v - 1, 1));                                         // (G, 1)
                // the first index whose cdf reaches the target = the count of entries below it (the cdf never decreases),
                // by binary search instead of a comparison pass and a sum over [G, V]
                chosen = searchsorted(cdf, target, false, false, null).clamp_max_(v - 1);             // (G, 1)
                // log p of the chosen token from its probability: within float rounding (~1e-7) of a log-softmax's, without a
                // second pass over [G, V]
                logp = probs.gather(-1, chosen).log_();
            }
            var both = cat([chosen.to(ScalarType.Float64), logp.to(ScalarType.Float64)], 1).cpu();  // (G, 2)
            var host = both.data<double>().ToArray();
            for (int k = 0; k < idx.Length; k++) { tokens[idx[k]] = (int)host[2 * k]; logps[idx[k]] = (float)host[2 * k + 1]; }
        }
        return (tokens, logps);
    }
}

/// <summary>Prompts of different lengths in one batch, left-padded to the longest.</summary>
public static class LeftPadding
{
    /// <summary>Ids [N, P] (padding = <paramref name="padId"/>) and attention mask [N, P] (1 on prompt tokens), P the longest prompt.</summary>
    public static (Tensor Ids, Tensor Mask) Pad(IReadOnlyList<int[]> prompts, long padId, Device device)
    {
        int n = prompts.Count, p = prompts.Max(x => x.Length);
        var ids = new long[n * p];
        var att = new long[n * p];
        Array.Fill(ids, padId);
        for (int i = 0; i < n; i++)
        {
            int off = p - prompts[i].Length;
            for (int j = 0; j < prompts[i].Length; j++) { ids[i * p + off + j] = prompts[i][j]; att[i * p + off + j] = 1; }
        }
        return (tensor(ids, [n, p], device: device), tensor(att, [n, p], device: device));
    }
}
