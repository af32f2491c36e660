using SimKO.Host.Batches;
using static TorchSharp.torch;

namespace SimKO.Host.Training;

/// <summary>
/// How a mini-batch's rows are cut into micro-batches (SPEC §8): a fixed number of rows in order,
/// or, with a token budget, rows sorted by length (longest first) and each micro-batch filled while
/// rows × (its longest prompt + its longest response) stays within the budget — verl's dynamic
/// batch size. A row longer than the budget forms a micro-batch of its own. The loss normaliser is
/// the mini-batch's, so the split never changes the gradient.
/// </summary>
public static class MicroBatches
{
    /// <summary>Real prompt and response lengths of every row of a packed batch.</summary>
    public static (int Prompt, int Response)[] Lengths(PackedBatch batch)
    {
        using var _ = no_grad();
        var prompt = batch.Attention.narrow(1, 0, batch.PromptLength).sum(1).cpu().data<long>().ToArray();
        var response = batch.ResponseMask.sum(1).to(ScalarType.Int64).cpu().data<long>().ToArray();
        return prompt.Zip(response, (p, r) => ((int)p, (int)r)).ToArray();
    }

    /// <summary>Micro-batches (row indices) of <paramref name="rows"/>.</summary>
    public static List<int[]> Split(int[] rows, (int Prompt, int Response)[] lengths, int maxRows, int maxTokens)
    {
        var result = new List<int[]>();
        if (maxTokens <= 0)
        {
            for (int i = 0; i < rows.Length; i += maxRows) result.Add(rows.Skip(i).Take(maxRows).ToArray());
            return result;
        }
        var sorted = rows.OrderByDescending(r => lengths[r].Prompt + lengths[r].Response).ThenBy(r => r).ToArray();
        var current = new List<int>();
        int maxP = 0, maxR = 0;
        foreach (var r in sorted)
        {
            int p = System.Math.Max(maxP, lengths[r].Prompt), q = System.Math.Max(maxR, System.Math.Max(1, lengths[r].Response));
            if (current.Count > 0 && (long)(current.Count + 1) * (p + q) > maxTokens)
            {
                result.Add(current.ToArray());
                current.Clear();
                p = lengths[r].Prompt; q = System.Math.Max(1, lengths[r].Response);
            }
            current.Add(r);
            maxP = p; maxR = q;
        }
        if (current.Count > 0) result.Add(current.ToArray());
        return result;
    }
}
