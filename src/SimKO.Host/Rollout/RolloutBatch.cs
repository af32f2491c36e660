using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Rollout;

/// <summary>
/// Responses laid out for the trainer's forward pass: each row is its prompt left-padded to
/// <see cref="PromptLength"/> followed by its response right-padded to <see cref="ResponseLength"/>.
/// The logits that score response token <c>j</c> sit at column <c>PromptLength + j − 1</c> of the
/// model's output.
/// </summary>
public sealed class RolloutBatch : IDisposable
{
    /// <summary><c>[N, P + R]</c> int64 token ids (padding = pad id).</summary>
    public Tensor InputIds { get; }
    /// <summary><c>[N, P + R]</c> int64, 1 on real prompt and response tokens.</summary>
    public Tensor AttentionMask { get; }
    /// <summary><c>[N, R]</c> float32, 1 on response tokens, 0 on padding.</summary>
    public Tensor ResponseMask { get; }
    /// <summary><c>[N, R]</c> int64 response token ids (pad id on padding).</summary>
    public Tensor ResponseIds { get; }
    /// <summary><c>[N, R]</c> float32 sampler log-probs (0 on padding); a metric, not <c>logp_old</c>.</summary>
    public Tensor SamplerLogProbs { get; }
    /// <summary>P: the longest prompt.</summary>
    public int PromptLength { get; }
    /// <summary>R: the longest response.</summary>
    public int ResponseLength { get; }

    private RolloutBatch(Tensor ids, Tensor mask, Tensor respMask, Tensor respIds, Tensor lps, int p, int r)
    {
        InputIds = ids; AttentionMask = mask; ResponseMask = respMask; ResponseIds = respIds; SamplerLogProbs = lps;
        PromptLength = p; ResponseLength = r;
    }

    /// <summary>Builds the padded tensors of <paramref name="responses"/> (prompts from <paramref name="prompts"/>).</summary>
    public static RolloutBatch Build(IReadOnlyList<int[]> prompts, IReadOnlyList<RolloutResponse> responses, int padId, Device device)
    {
        int n = responses.Count;
        int p = responses.Max(x => prompts[x.PromptIndex].Length);
        int r = System.Math.Max(1, responses.Max(x => x.Length));
        int w = p + r;
        var ids = new long[n * w];
        var mask = new long[n * w];
        var respMask = new float[n * r];
        var respIds = new long[n * r];
        var lps = new float[n * r];
        Array.Fill(ids, padId);
        Array.Fill(respIds, padId);
        for (int i = 0; i < n; i++)
        {
            var prompt = prompts[responses[i].PromptIndex];
            int pad = p - prompt.Length;
            for (int j = 0; j < prompt.Length; j++) { ids[i * w + pad + j] = prompt[j]; mask[i * w + pad + j] = 1; }
            var resp = responses[i];
            for (int j = 0; j < resp.Length; j++)
            {
                ids[i * w + p + j] = resp.TokenIds[j];
                mask[i * w + p + j] = 1;
                respMask[i * r + j] = 1;
                respIds[i * r + j] = resp.TokenIds[j];
                lps[i * r + j] = resp.LogProbs[j];
            }
        }
        return new RolloutBatch(
            torch.tensor(ids, [n, w], device: device).DetachFromDisposeScope(),
            torch.tensor(mask, [n, w], device: device).DetachFromDisposeScope(),
            torch.tensor(respMask, [n, r], device: device).DetachFromDisposeScope(),
            torch.tensor(respIds, [n, r], device: device).DetachFromDisposeScope(),
            torch.tensor(lps, [n, r], device: device).DetachFromDisposeScope(),
            p, r);
    }

    public void Dispose()
    {
        InputIds.Dispose(); AttentionMask.Dispose(); ResponseMask.Dispose(); ResponseIds.Dispose(); SamplerLogProbs.Dispose();
    }
}
