namespace SimKO.Host.Rollout;

/// <summary>
/// How responses are sampled. Order of the logit transforms (as HF and vLLM): temperature, then
/// top-k, then top-p; the sample is drawn from the renormalised result.
/// </summary>
public sealed record SamplingSettings
{
    /// <summary>Responses per prompt (the group size G). Default 1.</summary>
    public int SamplesPerPrompt { get; init; } = 1;
    /// <summary>Softmax temperature; 0 means greedy (argmax). Default 1.</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Nucleus: keep the smallest set of most likely tokens whose mass reaches TopP. 1 = off. Default 1.</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Keep the K most likely tokens (ties with the K-th kept too). 0 = off. Default 0.</summary>
    public int TopK { get; init; } = 0;
    /// <summary>Most tokens generated per response. Default 256.</summary>
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>Ids that end a response, in addition to the engine's EOS. Default none.</summary>
    public int[] StopTokenIds { get; init; } = [];
    /// <summary>Texts that end a response once its decoded text contains one. Default none.</summary>
    public string[] StopStrings { get; init; } = [];
    /// <summary>Seed of the sampling generator: same seed, prompts and engine options → same responses on CPU. Default 0.</summary>
    public long Seed { get; init; } = 0;

    /// <summary>The defaults above.</summary>
    public static SamplingSettings Defaults { get; } = new();

    /// <summary>Every problem at once (empty when valid), each saying what is accepted.</summary>
    public IReadOnlyList<string> Validate()
    {
        var p = new List<string>();
        if (SamplesPerPrompt < 1) p.Add($"SamplesPerPrompt must be >= 1 (found {SamplesPerPrompt}).");
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) p.Add($"Temperature must be finite and >= 0 (found {Temperature}; 0 = greedy).");
        if (!(TopP > 0 && TopP <= 1)) p.Add($"TopP must be in (0, 1] (found {TopP}; 1 = off).");
        if (TopK < 0) p.Add($"TopK must be >= 0 (found {TopK}; 0 = off).");
        if (MaxNewTokens < 1) p.Add($"MaxNewTokens must be >= 1 (found {MaxNewTokens}).");
        if (StopStrings.Any(string.IsNullOrEmpty)) p.Add("StopStrings may not contain empty strings.");
        return p;
    }
}

/// <summary>What to generate: one token-id array per prompt (unpadded), and how.</summary>
public sealed record RolloutRequest(IReadOnlyList<int[]> Prompts, SamplingSettings Sampling);

/// <summary>Why a response ended.</summary>
public enum FinishReason
{
    /// <summary>The EOS or a stop token id was sampled (it is the last token of the response, inside the mask).</summary>
    Eos,
    /// <summary>The decoded text came to contain a stop string (the response ends with the token that completed it).</summary>
    StopString,
    /// <summary>MaxNewTokens were generated.</summary>
    Length,
}

/// <summary>
/// One sampled response.
/// </summary>
/// <param name="PromptIndex">index into <see cref="RolloutRequest.Prompts"/></param>
/// <param name="SampleIndex">0 .. SamplesPerPrompt−1 within its prompt's group</param>
/// <param name="TokenIds">the response tokens <c>[L]</c>, unpadded, the final EOS included</param>
/// <param name="LogProbs"><c>[L]</c> log-probability of each token under the distribution it was
/// sampled from — the policy's softmax after temperature, top-k and top-p, renormalised (0 for
/// greedy). Not the raw policy's log-probs: the trainer recomputes those (SPEC §8)</param>
/// <param name="FinishReason">why it ended</param>
public sealed record RolloutResponse(int PromptIndex, int SampleIndex, int[] TokenIds, float[] LogProbs, FinishReason FinishReason)
{
    /// <summary>Tokens in the response.</summary>
    public int Length => TokenIds.Length;
}

/// <summary>Counters of one <see cref="IRolloutEngine.Generate"/> call.</summary>
/// <param name="GeneratedTokens">sum of the response lengths</param>
/// <param name="DecodeSteps">forward passes after the prompt (summed over batch chunks)</param>
/// <param name="Seconds">wall time</param>
public sealed record RolloutStats(long GeneratedTokens, long DecodeSteps, double Seconds)
{
    public double TokensPerSecond => Seconds > 0 ? GeneratedTokens / Seconds : 0;
}

/// <summary>All responses, prompt-major: the <c>n</c> responses of prompt 0, then of prompt 1, …</summary>
public sealed record RolloutResult(IReadOnlyList<RolloutResponse> Responses, RolloutStats Stats);

/// <summary>
/// The rollout seam (SPEC §8): prompts in, sampled responses out. The in-process
/// <see cref="KvCacheRolloutEngine"/> is one implementation; a client of an inference server is
/// another. The trainer never knows which produced a batch.
/// </summary>
public interface IRolloutEngine
{
    /// <summary>Samples <c>SamplesPerPrompt</c> responses for every prompt.</summary>
    RolloutResult Generate(RolloutRequest request);
}
