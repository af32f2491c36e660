namespace SimKO.Data.Math;

/// <summary>
/// Grades a completion (or a bare answer) against a reference answer: the answer is extracted with
/// <see cref="AnswerExtraction.Extract"/> (the whole text when no marker is found) and compared with
/// <see cref="MathEquivalence.Equivalent"/>. Never throws.
/// </summary>
public static class MathGrader
{
    /// <summary>The extracted answer (null when the text is empty) and whether it is correct.</summary>
    public static (string? Extracted, bool Correct) Grade(string? completionOrAnswer, string? reference)
    {
        if (string.IsNullOrWhiteSpace(completionOrAnswer)) return (null, false);
        var extracted = AnswerExtraction.Extract(completionOrAnswer) ?? completionOrAnswer.Trim();
        return (extracted, reference is not null && MathEquivalence.Equivalent(extracted, reference));
    }
}
