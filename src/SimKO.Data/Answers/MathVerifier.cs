namespace SimKO.Data.Answers;

/// <summary>Settings of <see cref="MathVerifier"/>.</summary>
/// <param name="RequireMarker">When true a completion must state its answer (<c>\boxed{}</c>, <c>####</c> or "the answer
/// is"); when false (default) a short one-line completion is itself the answer, as in <c>simko grade</c> files.</param>
/// <param name="Equivalence">Tolerances of the comparison.</param>
public sealed record MathVerifierSettings(bool RequireMarker = false, EquivalenceSettings? Equivalence = null)
{
    /// <summary>The documented defaults.</summary>
    public static readonly MathVerifierSettings Default = new();
}

/// <summary>
/// The reward of the math datasets (MATH-500, AIME, AMC, Minerva, OlympiadBench, GSM8K) and of the
/// word-problem task: extracts the final answer (<see cref="AnswerExtractor.Extract"/>) and compares it with
/// <see cref="Problem.Answer"/> by <see cref="MathEquivalence"/>, honouring <see cref="Problem.Unit"/> and
/// <see cref="Problem.IsMultipleAnswer"/> (answers in one box separated by commas, or one box each).
/// </summary>
public sealed class MathVerifier(MathVerifierSettings? settings = null) : IVerifier
{
    readonly MathVerifierSettings settings = settings ?? MathVerifierSettings.Default;

    /// <summary>A verifier with the default settings.</summary>
    public static readonly MathVerifier Default = new();

    /// <inheritdoc/>
    public GradeResult Grade(Problem problem, string completion)
    {
        var (answer, method) = AnswerExtractor.Extract(completion, settings.RequireMarker);
        if (answer is null) return new GradeResult(null, false, ExtractionMethod.None);
        if (MathEquivalence.AreEquivalent(answer, problem.Answer, problem.Unit, settings.Equivalence))
            return new GradeResult(answer, true, method);
        if (problem.IsMultipleAnswer && method == ExtractionMethod.Boxed)
        {
            var all = AnswerExtractor.AllBoxed(completion);
            if (all.Count > 1)
            {
                var joined = string.Join(",", all);
                if (MathEquivalence.AreEquivalent(joined, problem.Answer, problem.Unit, settings.Equivalence))
                    return new GradeResult(joined, true, method);
            }
        }
        return new GradeResult(answer, false, method);
    }

    /// <inheritdoc/>
    public double Score(Problem problem, string completion) => Grade(problem, completion).Score;
}
