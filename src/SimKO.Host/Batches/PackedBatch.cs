using static TorchSharp.torch;

namespace SimKO.Host.Batches;

/// <summary>
/// Responses packed for a forward pass: prompts left-padded to P tokens, responses right-padded to
/// R tokens, so that logits[:, P−1 .. P+R−2] predict the response tokens [:, 0 .. R−1].
/// </summary>
public sealed class PackedBatch : IDisposable
{
    /// <summary>[N, P+R] int64 token ids (padding = pad id).</summary>
    public required Tensor Ids { get; init; }
    /// <summary>[N, P+R] int64, 1 on real prompt and response tokens.</summary>
    public required Tensor Attention { get; init; }
    /// <summary>[N, R] int64 response tokens (pad where masked).</summary>
    public required Tensor ResponseTokens { get; init; }
    /// <summary>[N, R] float32, 1 on response tokens.</summary>
    public required Tensor ResponseMask { get; init; }
    public required int PromptLength { get; init; }
    public required int ResponseLength { get; init; }

    /// <summary>The logits that predict the response tokens: [N, R, V] out of [N, P+R, V].</summary>
    public Tensor ResponseLogits(Tensor logits) => logits.narrow(1, PromptLength - 1, ResponseLength);

    /// <summary>
    /// The rows <paramref name="index"/> ([n] int64) as a batch of their own; with
    /// <paramref name="trim"/>, padding columns no row of them uses are cut (prompts stay
    /// left-padded to their longest prompt, responses right-padded to their longest response).
    /// </summary>
    public PackedBatch Select(Tensor index, bool trim)
    {
        int p = PromptLength, r = ResponseLength;
        var ids = Ids.index_select(0, index);                                          // [n, P+R]
        var att = Attention.index_select(0, index);
        var tokens = ResponseTokens.index_select(0, index);                            // [n, R]
        var mask = ResponseMask.index_select(0, index);
        if (trim)
        {
            p = (int)att.narrow(1, 0, PromptLength).sum(1).max().item<long>();
            r = System.Math.Max(1, (int)mask.sum(1).max().item<float>());
            ids = ids.narrow(1, PromptLength - p, p + r);                              // [n, p+r]
            att = att.narrow(1, PromptLength - p, p + r);
            tokens = tokens.narrow(1, 0, r);                                           // [n, r]
            mask = mask.narrow(1, 0, r);
        }
        return new PackedBatch { Ids = ids, Attention = att, ResponseTokens = tokens, ResponseMask = mask, PromptLength = p, ResponseLength = r };
    }

    public void Dispose()
    {
        Ids.Dispose(); Attention.Dispose(); ResponseTokens.Dispose(); ResponseMask.Dispose();
    }

    public static PackedBatch Pack(IReadOnlyList<Sample> samples, int padId, Device device)
    {
        if (samples.Count == 0) throw new ArgumentException("cannot pack an empty batch");
        int p = samples.Max(s => s.Prompt.Length), r = System.Math.Max(1, samples.Max(s => s.Response.Length));
        if (samples.Any(s => s.Prompt.Length == 0)) throw new ArgumentException("every prompt needs at least one token");
        int n = samples.Count, t = p + r;
        var ids = new long[n * t];
        var att = new long[n * t];
        var resp = new long[n * r];
        var mask = new float[n * r];
        Array.Fill(ids, padId);
        Array.Fill(resp, padId);
        for (int i = 0; i < n; i++)
        {
            var s = samples[i];
            int offset = p - s.Prompt.Length;
            for (int j = 0; j < s.Prompt.Length; j++) { ids[i * t + offset + j] = s.Prompt[j]; att[i * t + offset + j] = 1; }
            for (int j = 0; j < s.Response.Length; j++)
            {
                ids[i * t + p + j] = s.Response[j]; att[i * t + p + j] = 1;
                resp[i * r + j] = s.Response[j]; mask[i * r + j] = 1;
            }
        }
        return new PackedBatch
        {
            Ids = tensor(ids, [n, t], device: device),
            Attention = tensor(att, [n, t], device: device),
            ResponseTokens = tensor(resp, [n, r], device: device),
            ResponseMask = tensor(mask, [n, r], device: device),
            PromptLength = p,
            ResponseLength = r,
        };
    }
}
