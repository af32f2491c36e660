namespace SimKO.Host.Rollout;

/// <summary>One generated response (whatever engine produced it): the prompt it answers, its token
/// ids (ending with the stop token when it stopped), and the sampler's log-prob of each token under
/// the distribution it sampled from (after temperature, top-k, top-p).</summary>
public sealed record Generated(int PromptIndex, int[] Tokens, float[] SamplerLogProbs);

/// <summary>A sampling request (SPEC §8): prompt token ids, n samples per prompt, sampling settings, seed.</summary>
public sealed record GenerateRequest(IReadOnlyList<int[]> Prompts, int SamplesPerPrompt, double Temperature, double TopP, int TopK, int MaxNewTokens, long Seed)
{
    /// <summary>Token ids that end a response (EOS and the like); the stop token is kept in the response.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Strings that end a response once its decoded text ends with one (kept in the response).</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>The step-wide index of <c>Prompts[0]</c> (data parallelism, issue 21): sample j of prompt i
    /// draws from the stream of prompt <c>PromptIndexBase + i</c>, so its tokens do not depend on which rank asked.</summary>
    public int PromptIndexBase { get; init; }
}

/// <summary>The rollout seam: the in-process KV-cache sampler is one implementation, a client of an
/// inference server the planned second. The trainer never knows which produced a batch.</summary>
public interface IRolloutEngine
{
    /// <summary>Responses grouped by prompt (all samples of prompt 0 first), <c>SamplesPerPrompt</c> per prompt.</summary>
    IReadOnlyList<Generated> Generate(GenerateRequest request);
}
