using System.Text;
using System.Text.Json;
using SimKO.Data.Answers;

namespace SimKO.Data.Datasets;

/// <summary>Options of <see cref="DatasetLoader.Load"/>.</summary>
public sealed record LoadOptions
{
    /// <summary>Dataset root; null means <see cref="DatasetRoot.Default"/>.</summary>
    public string? Root { get; init; }
    /// <summary>When true, rows that cannot be used are skipped and listed in <see cref="Dataset.Skipped"/>;
    /// when false (default) the first one stops the load with a <see cref="DataFormatException"/>.</summary>
    public bool SkipBadRows { get; init; }
    /// <summary>Field map for a file that is not a preset. Default: <see cref="FieldMap"/>'s defaults.</summary>
    public FieldMap? Fields { get; init; }
    /// <summary>Grader for a file that is not a preset. Default <see cref="GraderKind.Math"/>.</summary>
    public GraderKind Grader { get; init; } = GraderKind.Math;
}

/// <summary>A row left out under <see cref="LoadOptions.SkipBadRows"/>, with why.</summary>
public sealed record SkippedRow(string File, string Location, string Reason)
{
    /// <inheritdoc/>
    public override string ToString() => DataFormatException.Format(File, Location, Reason);
}

/// <summary>Problems loaded from files, the verifier that grades them, and the rows that were skipped.</summary>
public sealed record Dataset(string Name, IReadOnlyList<Problem> Problems, IVerifier Verifier, IReadOnlyList<SkippedRow> Skipped, IReadOnlyList<string> Files)
{
    /// <summary>One line per fact, for a run's log: the count, the files, then every skipped row.</summary>
    public string Report()
    {
        var sb = new StringBuilder();
        sb.Append($"dataset {Name}: {Problems.Count} problems from {Files.Count} file(s)");
        if (Skipped.Count > 0)
        {
            sb.Append($"; skipped {Skipped.Count} bad row(s):");
            foreach (var s in Skipped) sb.Append("\n  ").Append(s);
        }
        return sb.ToString();
    }
}

/// <summary>
/// Loads the paper's evaluation sets (<see cref="PresetNames"/>) exactly as published, or any JSONL / JSON /
/// Parquet file through a <see cref="FieldMap"/>. Every problem names its source row; every bad row is an
/// error naming file, row and field (or, with <see cref="LoadOptions.SkipBadRows"/>, a listed skip).
/// </summary>
public static class DatasetLoader
{
    /// <summary>The 27 BIG-Bench Hard tasks, one file <c>bbh/&lt;task&gt;.json</c> each.</summary>
    public static readonly IReadOnlyList<string> BbhTasks =
    [
        "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa", "dyck_languages",
        "formal_fallacies", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
        "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
        "multistep_arithmetic_two", "navigate", "object_counting", "penguins_in_a_table",
        "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection", "snarks",
        "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
        "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects", "web_of_lies", "word_sorting",
    ];

    static readonly FieldMap Bbh = new() { QuestionFields = ["input"], AnswerField = "target" };

    static readonly Dictionary<string, DatasetSource> Presets = BuildPresets();

    static Dictionary<string, DatasetSource> BuildPresets()
    {
        var gsm8k = new FieldMap { QuestionFields = ["question"], AnswerField = "answer", AnswerSource = AnswerSource.AfterHashes };
        var list = new List<DatasetSource>
        {
            new("math500", ["math500/test.jsonl"], new FieldMap { QuestionFields = ["problem"], IdField = "unique_id", MetadataFields = ["subject", "level"] }, GraderKind.Math),
            new("aime24", ["aime24/test.jsonl"], new FieldMap { QuestionFields = ["problem"], IdField = "id", MetadataFields = ["url"] }, GraderKind.Math),
            new("aime25", ["aime25/test.jsonl"], new FieldMap { QuestionFields = ["problem"] }, GraderKind.Math),
            new("amc23", ["amc23/test.jsonl"], new FieldMap { QuestionFields = ["problem", "question"], IdField = "id", MetadataFields = ["url"] }, GraderKind.Math),
            new("minerva_math", ["minerva_math/test.jsonl"], new FieldMap { QuestionFields = ["problem"], AnswerField = "solution", AnswerSource = AnswerSource.LastBoxed, IdField = "idx", MetadataFields = ["type"] }, GraderKind.Math),
            new("olympiadbench", ["olympiadbench/test.jsonl"], new FieldMap
            {
                QuestionFields = ["question"], AnswerField = "final_answer", IdField = "id", MultipleAnswerField = "is_multiple_answer",
                UnitField = "unit", MetadataFields = ["subfield", "answer_type"],
            }, GraderKind.Math),
            new("gsm8k", ["gsm8k/test.jsonl"], gsm8k, GraderKind.Math),
            new("gsm8k/test", ["gsm8k/test.jsonl"], gsm8k, GraderKind.Math),
            new("gsm8k/train", ["gsm8k/train.jsonl"], gsm8k, GraderKind.Math),
            new("bbh", BbhTasks.Select(t => $"bbh/{t}.json").ToArray(), Bbh, GraderKind.Bbh),
        };
        list.AddRange(BbhTasks.Select(t => new DatasetSource($"bbh/{t}", [$"bbh/{t}.json"], Bbh, GraderKind.Bbh)));
        return list.ToDictionary(d => d.Name, StringComparer.Ordinal);
    }

    /// <summary>Every preset name: the math sets, <c>gsm8k/train</c>, <c>gsm8k/test</c>, <c>bbh</c> and <c>bbh/&lt;task&gt;</c>.</summary>
    public static IReadOnlyList<string> PresetNames => Presets.Keys.ToArray();

    /// <summary>The source of a preset, or null when <paramref name="name"/> is not one.</summary>
    public static DatasetSource? TryGetPreset(string name) => Presets.GetValueOrDefault(name);

    /// <summary>The verifier for a grader kind.</summary>
    public static IVerifier VerifierFor(GraderKind kind) => kind switch
    {
        GraderKind.Math => MathVerifier.Default,
        GraderKind.Bbh => BbhVerifier.Default,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown grader"),
    };

    /// <summary>
    /// Loads a preset (<see cref="PresetNames"/>) or, when <paramref name="presetOrFile"/> is not one, a file
    /// (absolute, relative to the working directory, or relative to the root) read with
    /// <see cref="LoadOptions.Fields"/> and graded by <see cref="LoadOptions.Grader"/>.
    /// </summary>
    /// <exception cref="DataFormatException">Unknown name, missing/empty/malformed file, or (without
    /// <see cref="LoadOptions.SkipBadRows"/>) a bad row.</exception>
    public static Dataset Load(string presetOrFile, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        var root = options.Root ?? DatasetRoot.Default();
        if (Presets.TryGetValue(presetOrFile, out var preset)) return Load(preset, options);
        var candidates = new[] { presetOrFile, Path.Combine(root, presetOrFile) };
        var path = candidates.FirstOrDefault(File.Exists);
        if (path is null)
            throw new DataFormatException(presetOrFile, null, null,
                $"neither a preset ({string.Join(", ", Presets.Keys.Where(k => !k.StartsWith("bbh/", StringComparison.Ordinal)))}, bbh/<task>) nor an existing file (dataset root: {root})");
        var name = Path.GetFileNameWithoutExtension(path);
        return Load(new DatasetSource(name, [Path.GetFullPath(path)], options.Fields ?? new FieldMap(), options.Grader), options);
    }

    /// <summary>Loads every file of <paramref name="source"/>.</summary>
    public static Dataset Load(DatasetSource source, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        var fieldErrors = source.Fields.Validate();
        if (fieldErrors.Count > 0) throw new ArgumentException($"invalid field map for {source.Name}: {string.Join("; ", fieldErrors)}");
        var root = options.Root ?? DatasetRoot.Default();
        var problems = new List<Problem>();
        var skipped = new List<SkippedRow>();
        var files = new List<string>();
        foreach (var file in source.Files)
        {
            var path = Path.IsPathRooted(file) ? file : Path.Combine(root, file);
            var shown = Path.IsPathRooted(file) ? file : file.Replace('\\', '/');
            files.Add(path);
            var idPrefix = source.Files.Count == 1 ? source.Name : $"{source.Name}/{Path.GetFileNameWithoutExtension(file)}";
            var task = source.Grader == GraderKind.Bbh ? Path.GetFileNameWithoutExtension(file) : null;
            foreach (var row in RecordReader.Read(path, shown, source.Fields.RecordsField))
            {
                try
                {
                    if (row.Error is not null) throw new DataFormatException(row.File, row.Location, null, row.Error);
                    problems.Add(ToProblem(row, row.Value!.Value, source.Fields, idPrefix, task));
                }
                catch (DataFormatException e) when (options.SkipBadRows)
                {
                    skipped.Add(new SkippedRow(e.File, e.Location ?? "", e.Reason));
                }
            }
        }
        if (problems.Count == 0)
            throw new DataFormatException(string.Join(", ", source.Files), null, null, $"no usable rows: all {skipped.Count} rows were bad (first: {skipped.FirstOrDefault()})");
        return new Dataset(source.Name, problems, VerifierFor(source.Grader), skipped, files);
    }

    static Problem ToProblem(RawRecord row, JsonElement obj, FieldMap map, string idPrefix, string? bbhTask)
    {
        string? questionField = map.QuestionFields.FirstOrDefault(f => obj.TryGetProperty(f, out var v) && v.ValueKind != JsonValueKind.Null);
        if (questionField is null) throw Missing(row, obj, string.Join("' or '", map.QuestionFields));
        var question = RequireString(row, obj.GetProperty(questionField), questionField);

        if (!obj.TryGetProperty(map.AnswerField, out var answerEl) || answerEl.ValueKind == JsonValueKind.Null) throw Missing(row, obj, map.AnswerField);
        var answerText = AnswerText(row, answerEl, map.AnswerField);
        string answer = map.AnswerSource switch
        {
            AnswerSource.Field => answerText,
            AnswerSource.LastBoxed => AnswerExtractor.LastBoxed(answerText)
                ?? throw new DataFormatException(row.File, row.Location, map.AnswerField, $"field '{map.AnswerField}' has no balanced \\boxed{{...}} to take the answer from"),
            AnswerSource.AfterHashes => AnswerExtractor.AfterHashes(answerText)
                ?? throw new DataFormatException(row.File, row.Location, map.AnswerField, $"field '{map.AnswerField}' has no '#### <answer>' line to take the answer from"),
            _ => throw new ArgumentOutOfRangeException(nameof(map)),
        };
        if (string.IsNullOrWhiteSpace(answer)) throw new DataFormatException(row.File, row.Location, map.AnswerField, $"field '{map.AnswerField}' gives an empty answer");

        string id = row.Location;
        if (map.IdField is not null && obj.TryGetProperty(map.IdField, out var idEl) && idEl.ValueKind is JsonValueKind.String or JsonValueKind.Number)
            id = idEl.ValueKind == JsonValueKind.String ? idEl.GetString()! : idEl.GetRawText();

        bool multiple = false;
        if (map.MultipleAnswerField is not null && obj.TryGetProperty(map.MultipleAnswerField, out var mEl))
        {
            multiple = mEl.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False or JsonValueKind.Null => false,
                JsonValueKind.String when bool.TryParse(mEl.GetString(), out var b) => b,
                _ => throw new DataFormatException(row.File, row.Location, map.MultipleAnswerField,
                    $"field '{map.MultipleAnswerField}' is {RecordReader.Describe(mEl.ValueKind)} '{Shorten(mEl.GetRawText())}'; expected true or false"),
            };
        }
        string? unit = null;
        if (map.UnitField is not null && obj.TryGetProperty(map.UnitField, out var uEl) && uEl.ValueKind != JsonValueKind.Null)
        {
            if (uEl.ValueKind != JsonValueKind.String)
                throw new DataFormatException(row.File, row.Location, map.UnitField, $"field '{map.UnitField}' is {RecordReader.Describe(uEl.ValueKind)}; expected a string or null");
            unit = string.IsNullOrWhiteSpace(uEl.GetString()) ? null : uEl.GetString();
        }
        var metadata = new Dictionary<string, string>();
        foreach (var f in map.MetadataFields)
            if (obj.TryGetProperty(f, out var v) && v.ValueKind != JsonValueKind.Null)
                metadata[f] = v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText();
        if (bbhTask is not null) metadata["task"] = bbhTask;

        return new Problem($"{idPrefix}/{id}", question, answer)
        {
            IsMultipleAnswer = multiple,
            Unit = unit,
            Source = DataFormatException.Format(row.File, row.Location, "").TrimEnd(' ', ':'),
            Metadata = metadata.Count == 0 ? Problem.EmptyMetadata : metadata,
        };
    }

    static DataFormatException Missing(RawRecord row, JsonElement obj, string field) =>
        new(row.File, row.Location, field,
            $"field '{field}' is missing; the row has: {string.Join(", ", obj.EnumerateObject().Where(p => p.Value.ValueKind != JsonValueKind.Null).Select(p => p.Name))}");

    static string RequireString(RawRecord row, JsonElement el, string field)
    {
        if (el.ValueKind != JsonValueKind.String)
            throw new DataFormatException(row.File, row.Location, field, $"field '{field}' is {RecordReader.Describe(el.ValueKind)}; expected a string");
        var s = el.GetString()!;
        if (string.IsNullOrWhiteSpace(s)) throw new DataFormatException(row.File, row.Location, field, $"field '{field}' is empty");
        return s;
    }

    /// <summary>A string, a number (its text as written, e.g. <c>27.0</c>), or a list of those joined by commas.</summary>
    static string AnswerText(RawRecord row, JsonElement el, string field)
    {
        switch (el.ValueKind)
        {
            case JsonValueKind.String: return el.GetString()!;
            case JsonValueKind.Number: return el.GetRawText();
            case JsonValueKind.Array:
            {
                var parts = new List<string>();
                foreach (var item in el.EnumerateArray())
                {
                    if (item.ValueKind == JsonValueKind.String) parts.Add(item.GetString()!);
                    else if (item.ValueKind == JsonValueKind.Number) parts.Add(item.GetRawText());
                    else throw new DataFormatException(row.File, row.Location, field, $"field '{field}' is a list holding {RecordReader.Describe(item.ValueKind)}; expected strings or numbers");
                }
                if (parts.Count == 0) throw new DataFormatException(row.File, row.Location, field, $"field '{field}' is an empty list");
                return string.Join(",", parts);
            }
            default:
                throw new DataFormatException(row.File, row.Location, field, $"field '{field}' is {RecordReader.Describe(el.ValueKind)}; expected a string, a number or a list of strings");
        }
    }

    static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "…";
}
