using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SimKO.Data.Json;
using Parquet.Schema;
using Parquet.Serialization;

namespace SimKO.Data.Math;

/// <summary>One message of a chat prompt (verl's <c>prompt</c> column: <c>{"role", "content"}</c>).</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>One evaluation or training problem: its id, the question and the reference answer.
/// A row whose question field is a list of messages (verl's <c>prompt</c>) keeps them in
/// <see cref="Messages"/> (<see cref="Question"/> is then the last user message's content); verl's
/// <c>data_source</c> and <c>extra_info</c> (as JSON) travel along for a reward function.</summary>
public sealed record MathProblem(string Id, string Question, string Answer)
{
    public IReadOnlyList<ChatMessage>? Messages { get; init; }
    public string? DataSource { get; init; }
    public string? ExtraInfoJson { get; init; }
}

/// <summary>A dataset file that cannot be read as its preset says, with file, line and field.</summary>
public sealed class DatasetException : Exception
{
    public DatasetException(string message) : base(message) { }
    public DatasetException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>Where a row's reference answer is: a field as it is, the last \boxed{} of a solution
/// field, the text after "#### " (GSM8K), or a JSON list of final answers (OlympiadBench).</summary>
public enum AnswerFrom { Answer, BoxedInSolution, FinalAnswerList, AfterHashes }

/// <summary>How to read a JSONL or Parquet file that is not a preset: the question from the first
/// of <see cref="QuestionFields"/> that has a value, or built by <see cref="QuestionTemplate"/>
/// (then <see cref="QuestionFields"/> is empty); the answer field and how to take the answer from it
/// (FinalAnswerList always reads <c>final_answer</c>); and an optional id field.</summary>
public sealed record FieldOptions(string[] QuestionFields, string AnswerField, AnswerFrom Answer = AnswerFrom.Answer, string? IdField = null)
{
    /// <summary>Builds the question from several fields (SVAMP's <c>"{Body} {Question}"</c>) instead
    /// of taking one of <see cref="QuestionFields"/>; null (the default) when the question is one field.</summary>
    public QuestionTemplate? QuestionTemplate { get; init; }

    /// <summary>Auto (the default): verl's format when the file has verl's <c>prompt</c> and
    /// <c>reward_model</c> columns and none of the question fields; Verl: always (an error naming
    /// the missing columns otherwise); Fields: never.</summary>
    public DataFormat Format { get; init; } = DataFormat.Auto;

    /// <summary>Options whose question is built by <paramref name="template"/>.</summary>
    public static FieldOptions FromTemplate(QuestionTemplate template, string answerField, AnswerFrom answer = AnswerFrom.Answer, string? idField = null) =>
        new([], answerField, answer, idField) { QuestionTemplate = template };
}

/// <summary>How a data file's rows are read: detected, verl's layout, or the named fields.</summary>
public enum DataFormat { Auto, Verl, Fields }

/// <summary>Rows read, and every row skipped (only with skipBadRows) with its reason;
/// <see cref="Format"/> says how the file was read when it was detected (verl's format), for the log.</summary>
public sealed record LoadResult(IReadOnlyList<MathProblem> Problems, IReadOnlyList<string> Skipped)
{
    public string? Format { get; init; }
}

/// <summary>
/// Loads the math benchmarks (math500, aime24, aime25, amc23, minerva_math, olympiadbench, gsm8k)
/// from JSONL files under a dataset root, each with its own schema (see the datasets README):
/// the question from <c>problem</c> or <c>question</c>; the answer from <c>answer</c>, from the last
/// <c>\boxed{}</c> of <c>solution</c> (minerva_math), from <c>final_answer</c>'s list
/// (olympiadbench) or after <c>#### </c> (gsm8k). Any other JSONL or Parquet file is read through
/// <see cref="FieldOptions"/>. A question is a string; an answer or an id a string or a number (a
/// number as the file writes it, so <c>145.0</c> stays <c>145.0</c> and grades equal to <c>145</c>);
/// a field of another type is an error naming the file, the line, the field, its type and the type expected.
/// </summary>
public static class Datasets
{
    sealed record Preset(string Folder, string[] QuestionFields, AnswerFrom Answer, string? IdField, QuestionTemplate? Template = null)
    {
        /// <summary>verl's format: data_source and extra_info are kept for a reward function.</summary>
        public bool Verl { get; init; }
        public string AnswerField => Answer switch { AnswerFrom.BoxedInSolution => "solution", AnswerFrom.FinalAnswerList => "final_answer", _ => "answer" };
    }

    static readonly Dictionary<string, Preset> Presets = new(StringComparer.OrdinalIgnoreCase)
    {
        ["math500"] = new("math500", ["problem"], AnswerFrom.Answer, "unique_id"),
        ["aime24"] = new("aime24", ["problem", "question"], AnswerFrom.Answer, "id"),
        ["aime25"] = new("aime25", ["problem", "question"], AnswerFrom.Answer, null),
        ["amc23"] = new("amc23", ["problem", "question"], AnswerFrom.Answer, "id"),
        ["minerva_math"] = new("minerva_math", ["problem"], AnswerFrom.BoxedInSolution, "idx"),
        ["olympiadbench"] = new("olympiadbench", ["question"], AnswerFrom.FinalAnswerList, "id"),
        ["gsm8k"] = new("gsm8k", ["question"], AnswerFrom.AfterHashes, null),
    };

    /// <summary>The preset names, in the order the paper reports them.</summary>
    public static IReadOnlyList<string> Names { get; } =
        ["math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench", "gsm8k"];

    /// <summary><c>&lt;repo root&gt;/../shared/datasets</c>, the repo root being the nearest folder
    /// above the running program that holds <c>SimKO.sln</c>; null when there is none.</summary>
    public static string? DefaultRoot()
    {
        var repo = FindRepoRoot(AppContext.BaseDirectory);
        return repo is null ? null : Path.GetFullPath(Path.Combine(repo, "..", "shared", "datasets"));
    }

    /// <summary>The nearest folder at or above <paramref name="start"/> that holds SimKO.sln.</summary>
    public static string? FindRepoRoot(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SimKO.sln"))) return dir.FullName;
        return null;
    }

    /// <summary>The file a preset reads: <c>&lt;root&gt;/&lt;folder&gt;/&lt;split&gt;.jsonl</c>.</summary>
    public static string PathOf(string preset, string? root = null, string split = "test")
    {
        var p = Find(preset);
        root ??= DefaultRoot() ?? throw new DatasetException(
            "no dataset root given and no SimKO.sln above the program to find ../shared/datasets from");
        return Path.Combine(root, p.Folder, split + ".jsonl");
    }

    static Preset Find(string preset) =>
        Presets.TryGetValue(preset, out var p) ? p
        : throw new DatasetException($"unknown dataset '{preset}'; known: {string.Join(", ", Names)}");

    /// <summary>Every row of a preset's split (gsm8k has train and test; the others test only).</summary>
    public static IReadOnlyList<MathProblem> Load(string preset, string? root = null, string split = "test") =>
        LoadWithReport(preset, root, split, skipBadRows: false).Problems;

    /// <summary>A preset's split; with <paramref name="skipBadRows"/> a bad row is skipped and listed
    /// (file, line, reason) instead of stopping the load.</summary>
    public static LoadResult LoadWithReport(string preset, string? root, string split, bool skipBadRows)
    {
        var p = Find(preset);
        var path = PathOf(preset, root, split);
        if (!File.Exists(path)) throw new DatasetException($"{path}: no such file (dataset '{preset}', split '{split}')");
        return Read(path, p, preset + "-" + split, skipBadRows);
    }

    /// <summary>Any JSONL file, or Apache Parquet file (by the extension <c>.parquet</c>), read
    /// through explicit field options; a Parquet column is read as the JSONL field of that name.</summary>
    public static LoadResult LoadFile(string path, FieldOptions fields, bool skipBadRows = false)
    {
        if (!File.Exists(path)) throw new DatasetException($"{path}: no such file");
        var questionFields = fields.QuestionFields ?? [];
        if (fields.QuestionTemplate is not null && questionFields.Length > 0)
            throw new DatasetException($"{path}: give question fields ({string.Join(", ", questionFields)}) or a question template (\"{fields.QuestionTemplate.Text}\"), not both");
        if (fields.QuestionTemplate is null && questionFields.Length == 0)
            throw new DatasetException($"{path}: no question field or question template given");
        var preset = new Preset("", questionFields, fields.Answer, fields.IdField, fields.QuestionTemplate);
        var idPrefix = Path.GetFileNameWithoutExtension(path);
        bool parquet = path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase);
        var table = parquet ? ReadTable(path) : null;
        // a JSONL file's format is detected from its first good row's fields
        var first = parquet ? null : JsonLines.File(path, "a JSON object", m => new DatasetException(m), _ => { }).Select(r => r.Object).FirstOrDefault();
        var names = parquet ? table!.Schema.Fields.Select(f => f.Name).ToList()
            : first is not null ? first.Select(kv => kv.Key).ToList() : [];
        string answerField = fields.AnswerField;
        string? format = null;
        if (fields.Format == DataFormat.Verl || (fields.Format == DataFormat.Auto && fields.QuestionTemplate is null
            && !questionFields.Any(f => Has(names, f)) && VerlColumns.Take(2).All(names.Contains)))
        {
            var absent = VerlColumns.Take(2).Where(c => !names.Contains(c)).ToList();
            if (absent.Count > 0)
                throw new DatasetException($"{path}: data_format=verl needs the column '{string.Join("' and '", absent)}' ({(parquet ? "columns" : "fields of the first row")} present: {string.Join(", ", names)})");
            // verl: the prompt is a list of messages, the answer reward_model.ground_truth (unless
            // answer_field names another field the file has), the id extra_info.index when there is one
            if (!Has(names, answerField)) answerField = "reward_model.ground_truth";
            preset = new Preset("", ["prompt"], AnswerFrom.Answer, fields.IdField ?? "extra_info.index") { Verl = true };
            format = $"data_format=verl ({(fields.Format == DataFormat.Verl ? "asked" : "detected from the columns " + string.Join(", ", names.Where(VerlColumns.Contains)))}): "
                + $"prompt from 'prompt' (a list of messages), answer from '{answerField}'";
        }
        var result = parquet
            ? ReadParquet(path, table!, preset, idPrefix, skipBadRows, answerField)
            : Read(path, preset, idPrefix, skipBadRows, answerField);
        return result with { Format = format };
    }

    /// <summary>verl's columns; the first two make a file verl's.</summary>
    static readonly string[] VerlColumns = ["prompt", "reward_model", "data_source", "ability", "extra_info"];

    /// <summary>Whether a field (<c>a.b.c</c>: field a, its field b, …) is among the top-level names.</summary>
    static bool Has(IReadOnlyCollection<string> names, string field) =>
        names.Contains(field) || (field.Contains('.') && names.Contains(field.Split('.')[0]));

    /// <summary>The value of <paramref name="field"/> in <paramref name="obj"/>: the field of that
    /// exact name, else the dotted path through nested objects (<c>reward_model.ground_truth</c>).</summary>
    internal static bool TryField(JsonElement obj, string field, out JsonElement value)
    {
        if (obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(field, out value)) return true;
        value = default;
        if (!field.Contains('.')) return false;
        var at = obj;
        foreach (var part in field.Split('.'))
        {
            if (at.ValueKind != JsonValueKind.Object || !at.TryGetProperty(part, out at)) return false;
        }
        value = at;
        return true;
    }

    static LoadResult Read(string path, Preset p, string idPrefix, bool skipBadRows, string? answerField = null)
    {
        var rows = new List<MathProblem>();
        var skipped = new List<string>();
        foreach (var (lineNo, obj) in JsonLines.File(path, "a JSON object", m => new DatasetException(m), skipBadRows ? skipped.Add : null))
        {
            try { rows.Add(ParseObject(p, idPrefix, path, lineNo, obj, answerField ?? p.AnswerField)); }
            catch (DatasetException e) when (skipBadRows) { skipped.Add(e.Message); }
        }
        return Result(path, rows, skipped);
    }

    static LoadResult Result(string path, List<MathProblem> rows, List<string> skipped)
    {
        if (rows.Count == 0)
            throw new DatasetException(skipped.Count > 0 ? $"{path}: every row was bad ({skipped.Count} skipped; first: {skipped[0]})" : $"{path}: the file has no rows");
        return new LoadResult(rows, skipped);
    }

    static MathProblem ParseObject(Preset p, string idPrefix, string path, int lineNo, JsonObject node, string answerField)
    {
        var obj = JsonSerializer.SerializeToElement(node);
        string where = $"{path}:{lineNo}";
        string Present() => $"(fields present: {string.Join(", ", obj.EnumerateObject().Select(o => o.Name))})";
        string Missing(string[] fields)
        {
            var nulls = fields.Where(f => TryField(obj, f, out var v) && v.ValueKind == JsonValueKind.Null).ToList();
            return nulls.Count > 0
                ? $"{where}: field '{string.Join("' and '", nulls)}' is null {Present()}"
                : $"{where}: missing field '{string.Join("' or '", fields)}' {Present()}";
        }
        return ParseRow(p, idPrefix, new Row(obj, where, "field", Missing), lineNo, answerField);
    }

    /// <summary>One row of either reader as a JSON object (a Parquet row is turned into one), with
    /// <see cref="Where"/> to start every message (file and line, or file and row), <see cref="Noun"/>
    /// ("field" or "column") and <see cref="Missing"/>, which says why none of the given fields has a value.</summary>
    sealed record Row(JsonElement Obj, string Where, string Noun, Func<string[], string> Missing)
    {
        /// <summary>The first of <paramref name="fields"/> whose value is not null, with its name.</summary>
        public bool TryFirst(string[] fields, out string name, out JsonElement value)
        {
            foreach (var f in fields)
                if (TryField(Obj, f, out value) && value.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined))
                { name = f; return true; }
            name = ""; value = default;
            return false;
        }

        /// <summary>"<c>file:line: field 'f' is a number (17), expected a string</c>".</summary>
        public DatasetException WrongType(string field, JsonElement value, string expected) =>
            new($"{Where}: {Noun} '{field}' is {KindName(value)}, expected {expected}");

        /// <summary>The value of <paramref name="field"/>: a string as it is, a number as
        /// <see cref="NumberText"/> writes it (only where <paramref name="numbers"/>); any other type,
        /// null or absence is an error naming the field.</summary>
        public string Text(string field, bool numbers, string? context = null)
        {
            if (!TryFirst([field], out _, out var v))
                throw new DatasetException(Missing([field]) + (context is null ? "" : $"; {context}"));
            if (v.ValueKind == JsonValueKind.String) return v.GetString()!;
            if (numbers && v.ValueKind == JsonValueKind.Number) return NumberText(v);
            throw WrongType(field, v, (numbers ? "a string or a number" : "a string") + (context is null ? "" : $" ({context})"));
        }
    }

    /// <summary>A JSON value's type for messages, with the value itself when it is short and
    /// scalar: "a number (17)", "a boolean (true)", "a list", "an object", "null".</summary>
    static string KindName(JsonElement v)
    {
        string Short(string s) => s.Length <= 40 ? s : s[..37] + "...";
        return v.ValueKind switch
        {
            JsonValueKind.String => $"a string ({Short(JsonSerializer.Serialize(v.GetString()))})",
            JsonValueKind.Number => $"a number ({Short(v.GetRawText())})",
            JsonValueKind.True or JsonValueKind.False => $"a boolean ({v.GetRawText()})",
            JsonValueKind.Array => $"a list of {v.GetArrayLength()}",
            JsonValueKind.Object => "an object",
            _ => "null",
        };
    }

    /// <summary>A JSON number as text the math grader reads: as the file writes it (<c>145.0</c>,
    /// <c>-3</c>), except that an exponent is written out (<c>1e3</c> → <c>1000</c>) where it fits a decimal.</summary>
    static string NumberText(JsonElement v)
    {
        var raw = v.GetRawText();
        if (raw.IndexOfAny(['e', 'E']) < 0) return raw;
        return decimal.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)
            ? d.ToString(CultureInfo.InvariantCulture) : raw;
    }

    static MathProblem ParseRow(Preset p, string idPrefix, Row row, int rowNo, string answerField)
    {
        string question;
        IReadOnlyList<ChatMessage>? messages = null;
        if (p.Template is { } template)
            question = template.Fill(f => row.Text(f, numbers: true, context: $"named by the question template \"{template.Text}\""));
        else if (!row.TryFirst(p.QuestionFields, out var name, out var q))
            throw new DatasetException(row.Missing(p.QuestionFields));
        else if (q.ValueKind == JsonValueKind.Array)
        {
            messages = MessagesOf(row, name, q);
            question = messages.LastOrDefault(m => m.Role == "user")?.Content ?? messages[^1].Content;
        }
        else
            question = q.ValueKind == JsonValueKind.String ? q.GetString()! : throw row.WrongType(name, q, "a string (the question)");

        string answer = p.Answer switch
        {
            AnswerFrom.Answer => row.Text(answerField, numbers: true).Trim(),
            AnswerFrom.BoxedInSolution => AnswerExtraction.LastBoxed(row.Text(answerField, numbers: false))
                ?? throw new DatasetException($"{row.Where}: {row.Noun} '{answerField}' has no \\boxed{{...}} answer"),
            AnswerFrom.AfterHashes => AfterHashes(row.Text(answerField, numbers: false))
                ?? throw new DatasetException($"{row.Where}: {row.Noun} '{answerField}' has no '#### ' line"),
            AnswerFrom.FinalAnswerList => FinalAnswer(row),
            _ => throw new InvalidOperationException(),
        };
        if (answer.Length == 0) throw new DatasetException($"{row.Where}: the answer is empty");

        string id = p.IdField is not null && row.TryFirst([p.IdField], out _, out _)
            ? row.Text(p.IdField, numbers: true, context: "the id")
            : $"{idPrefix}-{rowNo}";
        string? dataSource = null, extra = null;
        if (p.Verl)
        {
            if (row.TryFirst(["data_source"], out _, out var ds))
                dataSource = ds.ValueKind == JsonValueKind.String ? ds.GetString() : throw row.WrongType("data_source", ds, "a string");
            if (row.TryFirst(["extra_info"], out _, out var ei)) extra = ei.GetRawText();
        }
        return new MathProblem(id, question, answer) { Messages = messages, DataSource = dataSource, ExtraInfoJson = extra };
    }

    /// <summary>A list of <c>{"role", "content"}</c> messages; an item of another shape is an error
    /// naming the row, the field, the item and what it lacks.</summary>
    static List<ChatMessage> MessagesOf(Row row, string field, JsonElement list)
    {
        var messages = new List<ChatMessage>();
        int i = 0;
        foreach (var item in list.EnumerateArray())
        {
            i++;
            string Part(string key) =>
                item.ValueKind == JsonValueKind.Object && item.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()!
                : throw new DatasetException($"{row.Where}: {row.Noun} '{field}' message {i}: " + (item.ValueKind != JsonValueKind.Object
                    ? $"is {KindName(item)}, expected an object {{\"role\", \"content\"}}"
                    : item.TryGetProperty(key, out var bad) ? $"'{key}' is {KindName(bad)}, expected a string" : $"has no '{key}'"));
            messages.Add(new ChatMessage(Part("role"), Part("content")));
        }
        if (messages.Count == 0) throw new DatasetException($"{row.Where}: {row.Noun} '{field}' is an empty list of messages");
        return messages;
    }

    /// <summary>The frame of a Parquet file, checked before the reader trusts it: "PAR1" at both ends and a
    /// footer length (the 4-byte little-endian integer before the closing magic) that fits in the file.
    /// A forged length (0x7fffffff) would otherwise make the reader allocate 2 GiB and end the process.</summary>
    static void CheckParquetFooter(FileStream stream, string path)
    {
        long length = stream.Length;
        if (length < 12) throw new DatasetException($"{path}: not a Parquet file: {length} bytes, fewer than the 12 of an empty file's frame");
        Span<byte> head = stackalloc byte[4], tail = stackalloc byte[8];
        stream.ReadExactly(head);
        stream.Seek(-8, SeekOrigin.End);
        stream.ReadExactly(tail);
        stream.Seek(0, SeekOrigin.Begin);
        if (!head.SequenceEqual("PAR1"u8) || !tail[4..].SequenceEqual("PAR1"u8))
            throw new DatasetException($"{path}: not a Parquet file: it does not start and end with the magic bytes 'PAR1'");
        long footer = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(tail[..4]);
        if (footer == 0 || footer > length - 12)
            throw new DatasetException($"{path}: damaged Parquet file: the footer length is {footer} bytes, but only {length - 12} bytes lie between the magic bytes");
    }

    /// <summary>A Parquet file: its columns are checked against the options once (a missing one is
    /// an error for the whole file, skipping or not), then each row, numbered from 1 across row
    /// groups, is turned into a JSON object of every column and read by <see cref="ParseRow"/>.</summary>
    static DeserializationResult<Dictionary<string, object>> ReadTable(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            CheckParquetFooter(stream, path);
            return ParquetSerializer.DeserializeUntypedAsync(stream).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new DatasetException($"{path}: not a readable Parquet file: {e.Message}", e);
        }
    }

    static LoadResult ReadParquet(string path, DeserializationResult<Dictionary<string, object>> table, Preset p, string idPrefix, bool skipBadRows, string answerField)
    {

        var columns = table.Schema.Fields.Select(f => f.Name).ToList();
        var listColumns = table.Schema.Fields.Where(f => f is ListField).Select(f => f.Name).ToHashSet();
        string Present() => $"(columns present: {string.Join(", ", columns)})";
        if (p.Template is { } template)
        {
            var absent = template.Fields.Where(f => !Has(columns, f)).ToList();
            if (absent.Count > 0)
                throw new DatasetException($"{path}: missing column '{string.Join("', '", absent)}' named by the question template \"{template.Text}\" {Present()}");
        }
        else if (!p.QuestionFields.Any(f => Has(columns, f)))
            throw new DatasetException($"{path}: missing column '{string.Join("' or '", p.QuestionFields)}' {Present()}");
        string needed = p.Answer == AnswerFrom.FinalAnswerList ? "final_answer" : answerField;
        if (!Has(columns, needed))
            throw new DatasetException($"{path}: missing column '{needed}' {Present()}");

        var rows = new List<MathProblem>();
        var skipped = new List<string>();
        int rowNo = 0;
        foreach (var values in table.Data)
        {
            rowNo++;
            string where = $"{path}: row {rowNo}";
            using var doc = ToJson(columns, values);
            var obj = doc.RootElement;
            // Every column is in the row (null where the file has none), so a field without a value
            // is a null or a list column's empty list (the reader gives none for it).
            string Missing(string[] fields) => where + ": " + string.Join("; ", fields.Select(f =>
                !TryField(obj, f, out _) ? $"no column '{f}'"
                : $"column '{f}' is null{(listColumns.Contains(f) ? " or an empty list" : "")}"));
            try { rows.Add(ParseRow(p, idPrefix, new Row(obj, where, "column", Missing), rowNo, answerField)); }
            catch (DatasetException e) when (skipBadRows) { skipped.Add(e.Message); }
        }
        return Result(path, rows, skipped);
    }

    /// <summary>A Parquet row as a JSON object with every column: strings and UTF-8 byte arrays as
    /// strings, numbers and booleans as themselves, lists as arrays, structs and maps as objects,
    /// anything else as its invariant text.</summary>
    static JsonDocument ToJson(IReadOnlyList<string> columns, IDictionary<string, object> values)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            foreach (var c in columns)
            {
                w.WritePropertyName(c);
                WriteValue(w, values.TryGetValue(c, out var v) ? v : null);
            }
            w.WriteEndObject();
        }
        return JsonDocument.Parse(buffer.WrittenMemory);
    }

    static void WriteValue(Utf8JsonWriter w, object? value)
    {
        switch (value)
        {
            case null: w.WriteNullValue(); break;
            case string s: w.WriteStringValue(s); break;
            case ReadOnlyMemory<char> m: w.WriteStringValue(m.Span); break;
            case byte[] bytes: w.WriteStringValue(Encoding.UTF8.GetString(bytes)); break;
            case bool b: w.WriteBooleanValue(b); break;
            case sbyte or byte or short or ushort or int or uint or long:
                w.WriteNumberValue(Convert.ToInt64(value, CultureInfo.InvariantCulture)); break;
            case ulong u: w.WriteNumberValue(u); break;
            case decimal d: w.WriteNumberValue(d); break;
            case double d when double.IsFinite(d): w.WriteNumberValue(d); break;
            case float f when float.IsFinite(f): w.WriteRawValue(f.ToString("R", CultureInfo.InvariantCulture)); break;
            case IDictionary map:
                w.WriteStartObject();
                foreach (DictionaryEntry e in map)
                {
                    w.WritePropertyName(Convert.ToString(e.Key, CultureInfo.InvariantCulture) ?? "");
                    WriteValue(w, e.Value);
                }
                w.WriteEndObject();
                break;
            case IEnumerable items:
                w.WriteStartArray();
                foreach (var item in items) WriteValue(w, item);
                w.WriteEndArray();
                break;
            default: w.WriteStringValue(Convert.ToString(value, CultureInfo.InvariantCulture)); break;
        }
    }

    static string? AfterHashes(string answer)
    {
        int at = answer.LastIndexOf("#### ", StringComparison.Ordinal);
        if (at < 0) return null;
        var rest = answer[(at + 5)..];
        int nl = rest.IndexOf('\n');
        return (nl < 0 ? rest : rest[..nl]).Trim();
    }

    /// <summary>olympiadbench's <c>final_answer</c>: a JSON list of strings (or numbers), or that
    /// list written as a (Python) string; its items are joined with ", ".</summary>
    static string FinalAnswer(Row row)
    {
        if (!row.TryFirst(["final_answer"], out _, out var v))
            throw new DatasetException(row.Missing(["final_answer"]));
        List<string> items;
        if (v.ValueKind == JsonValueKind.Array)
            items = v.EnumerateArray().Select((e, i) => e.ValueKind switch
            {
                JsonValueKind.String => e.GetString()!,
                JsonValueKind.Number => NumberText(e),
                _ => throw new DatasetException($"{row.Where}: {row.Noun} 'final_answer' item {i + 1} is {KindName(e)}, expected a string or a number"),
            }).ToList();
        else if (v.ValueKind == JsonValueKind.String)
            items = ParseListString(v.GetString()!)
                ?? throw new DatasetException($"{row.Where}: {row.Noun} 'final_answer' is not a list: {v.GetString()}");
        else
            throw row.WrongType("final_answer", v, "a list of strings, or one written in a string");
        if (items.Count == 0) throw new DatasetException($"{row.Where}: {row.Noun} 'final_answer' is an empty list");
        return string.Join(", ", items.Select(s => s.Trim()));
    }

    /// <summary>A list of quoted strings as Python or JSON writes it (<c>['a', "b"]</c>); null if not one.</summary>
    static List<string>? ParseListString(string s)
    {
        s = s.Trim();
        if (s.Length < 2 || s[0] != '[' || s[^1] != ']') return null;
        var items = new List<string>();
        int i = 1;
        while (true)
        {
            while (i < s.Length && (s[i] is ' ' or ',')) i++;
            if (i >= s.Length - 1) break;
            char quote = s[i];
            if (quote is not ('\'' or '"')) return null;
            var sb = new StringBuilder();
            i++;
            for (; i < s.Length && s[i] != quote; i++)
            {
                if (s[i] == '\\' && i + 1 < s.Length && (s[i + 1] is '\\' or '\'' or '"')) i++;
                sb.Append(s[i]);
            }
            if (i >= s.Length) return null;
            items.Add(sb.ToString());
            i++;
        }
        return items;
    }
}
