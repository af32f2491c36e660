namespace SimKO.Data;

/// <summary>
/// One problem of a dataset or a built-in task: what the model is asked and what a verifier compares
/// its answer with. Immutable; safe to share between threads.
/// </summary>
/// <param name="Id">Stable identifier, unique within its dataset (e.g. <c>math500/test/precalculus/807</c>,
/// <c>countdown/575:17</c>).</param>
/// <param name="Question">The question text as published (no prompt template applied).</param>
/// <param name="Answer">The reference answer, as published (LaTeX for the math sets, e.g. <c>\frac{14}{3}</c>;
/// the target for BBH, e.g. <c>(B)</c>; one canonical solution for built-in tasks). Verifiers compare
/// against this.</param>
public sealed record Problem(string Id, string Question, string Answer)
{
    /// <summary>True when <see cref="Answer"/> lists several answers that must all be given, in any order
    /// (OlympiadBench's <c>is_multiple_answer</c>, e.g. <c>$69$,$84$</c>).</summary>
    public bool IsMultipleAnswer { get; init; }

    /// <summary>Unit of the answer when the dataset states it (OlympiadBench's <c>unit</c>, e.g. <c>km/h</c>);
    /// a prediction may carry it or leave it out. Null when none.</summary>
    public string? Unit { get; init; }

    /// <summary>Where the problem came from: <c>file:line</c> for files, the task name for built-in tasks.</summary>
    public string? Source { get; init; }

    /// <summary>Extra published fields kept as text (e.g. MATH's <c>level</c> and <c>subject</c>, the BBH task name).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = EmptyMetadata;

    /// <summary>Task-specific data a built-in task's verifier needs (e.g. Countdown's numbers, target and all
    /// correct expressions). Null for dataset problems.</summary>
    public object? Payload { get; init; }

    internal static readonly IReadOnlyDictionary<string, string> EmptyMetadata = new Dictionary<string, string>();
}
