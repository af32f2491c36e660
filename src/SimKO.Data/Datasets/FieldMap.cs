namespace SimKO.Data.Datasets;

/// <summary>Where a row's reference answer is.</summary>
public enum AnswerSource
{
    /// <summary>The answer field is the answer (a string, a number, or a list of strings joined by commas).</summary>
    Field,
    /// <summary>The answer field is a worked solution; the answer is its last <c>\boxed{…}</c> (Minerva).</summary>
    LastBoxed,
    /// <summary>The answer field is a worked solution ending in <c>#### n</c> (GSM8K).</summary>
    AfterHashes,
}

/// <summary>Which verifier grades a dataset's problems.</summary>
public enum GraderKind
{
    /// <summary><see cref="Answers.MathVerifier"/>: mathematical equivalence.</summary>
    Math,
    /// <summary><see cref="Answers.BbhVerifier"/>: BIG-Bench Hard exact match.</summary>
    Bbh,
}

/// <summary>
/// How the fields of one file's rows map onto a <see cref="Problem"/>. The defaults read the common
/// layout <c>{"problem" or "question", "answer"}</c>.
/// </summary>
public sealed record FieldMap
{
    /// <summary>Question fields, tried in order; the first present one is used. Default <c>problem</c>, then <c>question</c>.</summary>
    public IReadOnlyList<string> QuestionFields { get; init; } = ["problem", "question"];
    /// <summary>The answer (or solution) field. Default <c>answer</c>.</summary>
    public string AnswerField { get; init; } = "answer";
    /// <summary>How to take the answer from <see cref="AnswerField"/>. Default <see cref="AnswerSource.Field"/>.</summary>
    public AnswerSource AnswerSource { get; init; } = AnswerSource.Field;
    /// <summary>Field used for <see cref="Problem.Id"/> when present; otherwise the row's location. Default none.</summary>
    public string? IdField { get; init; }
    /// <summary>Boolean field saying the answer lists several answers (OlympiadBench <c>is_multiple_answer</c>). Default none.</summary>
    public string? MultipleAnswerField { get; init; }
    /// <summary>Field holding the answer's unit (OlympiadBench <c>unit</c>; null or absent means none). Default none.</summary>
    public string? UnitField { get; init; }
    /// <summary>Fields copied as text into <see cref="Problem.Metadata"/> when present. Default none.</summary>
    public IReadOnlyList<string> MetadataFields { get; init; } = [];
    /// <summary>For a JSON file holding an object: the array field with the rows. Default <c>examples</c> (BBH).</summary>
    public string RecordsField { get; init; } = "examples";

    /// <summary>Every problem with these settings at once (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (QuestionFields.Count == 0 || QuestionFields.Any(string.IsNullOrWhiteSpace)) errors.Add("QuestionFields: give at least one non-empty field name");
        if (string.IsNullOrWhiteSpace(AnswerField)) errors.Add("AnswerField: give a non-empty field name");
        if (string.IsNullOrWhiteSpace(RecordsField)) errors.Add("RecordsField: give a non-empty field name");
        return errors;
    }
}

/// <summary>A named set of files with their field map and grader.</summary>
/// <param name="Name">Preset name, e.g. <c>math500</c>, <c>gsm8k/train</c>, <c>bbh/web_of_lies</c>.</param>
/// <param name="Files">Paths relative to the dataset root (or absolute).</param>
/// <param name="Fields">How rows become problems.</param>
/// <param name="Grader">Which verifier grades them.</param>
public sealed record DatasetSource(string Name, IReadOnlyList<string> Files, FieldMap Fields, GraderKind Grader);
