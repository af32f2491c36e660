namespace SimKO.Data;

/// <summary>How the answer was found in a completion.</summary>
public enum ExtractionMethod
{
    /// <summary>No answer could be found.</summary>
    None,
    /// <summary>The last <c>\boxed{…}</c> / <c>\fbox{…}</c> (balanced braces).</summary>
    Boxed,
    /// <summary>GSM8K's <c>#### n</c>.</summary>
    Hashes,
    /// <summary>A final "the answer is …" / "Answer: …".</summary>
    AnswerIs,
    /// <summary>The whole (short, one-line) completion is the answer.</summary>
    Whole,
    /// <summary>A built-in task's own response format.</summary>
    Task,
}

/// <summary>The outcome of grading one completion.</summary>
/// <param name="Extracted">The answer taken from the completion, verbatim (null when none was found).</param>
/// <param name="Correct">Whether it matches the reference.</param>
/// <param name="Method">How <paramref name="Extracted"/> was found.</param>
/// <param name="Reason">For task verifiers: why a response was rejected (e.g. "uses 7 twice"); null otherwise.</param>
public sealed record GradeResult(string? Extracted, bool Correct, ExtractionMethod Method, string? Reason = null)
{
    /// <summary>The reward: 1 when correct, else 0.</summary>
    public double Score => Correct ? 1.0 : 0.0;
}

/// <summary>
/// A verifiable reward. Implementations are pure, never throw on any completion text (unparseable output
/// is simply wrong), and are safe to call from several threads at once.
/// </summary>
public interface IVerifier
{
    /// <summary>Extracts the answer from <paramref name="completion"/> and decides whether it is correct.</summary>
    GradeResult Grade(Problem problem, string completion);

    /// <summary>The reward of one completion: 1 correct, 0 wrong.</summary>
    double Score(Problem problem, string completion);
}
