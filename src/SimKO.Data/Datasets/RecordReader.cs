using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SimKO.Data.Datasets;

/// <summary>One row of a file, before it becomes a <see cref="Problem"/>.</summary>
/// <param name="File">The file as shown in messages (relative to the dataset root when inside it).</param>
/// <param name="Location">Line number (JSONL), <c>examples[3]</c> (JSON) or <c>row 7</c> (Parquet).</param>
/// <param name="Value">The row as a JSON object, or null when <paramref name="Error"/> is set.</param>
/// <param name="Error">Why the row could not be read (e.g. malformed JSON), or null.</param>
public sealed record RawRecord(string File, string Location, JsonElement? Value, string? Error);

/// <summary>
/// Reads rows from JSONL (one object a line; blank lines are not rows), JSON (an array of objects, or an
/// object with an array field such as BBH's <c>examples</c>) and Parquet (one object per row; lists and
/// nested groups become JSON arrays and objects). File-level problems (missing, unreadable, empty, wrong
/// shape) throw <see cref="DataFormatException"/>; row-level problems are returned as <see cref="RawRecord.Error"/>.
/// </summary>
public static class RecordReader
{
    /// <summary>Reads every row of <paramref name="path"/>; <paramref name="shownAs"/> names the file in messages.</summary>
    /// <param name="recordsField">For a JSON object file: the field holding the rows (default <c>examples</c>).</param>
    public static IReadOnlyList<RawRecord> Read(string path, string shownAs, string recordsField = "examples")
    {
        if (!System.IO.File.Exists(path))
            throw new DataFormatException(shownAs, null, null, $"file not found (looked at {Path.GetFullPath(path)})");
        var ext = Path.GetExtension(path).ToLowerInvariant();
        IReadOnlyList<RawRecord> rows = ext switch
        {
            ".jsonl" or ".ndjson" => ReadJsonLines(path, shownAs),
            ".json" => ReadJson(path, shownAs, recordsField),
            ".parquet" => ReadParquet(path, shownAs),
            _ => throw new DataFormatException(shownAs, null, null, $"unknown file type '{ext}'; expected .jsonl, .json or .parquet"),
        };
        if (rows.Count == 0) throw new DataFormatException(shownAs, null, null, "the file has no rows");
        return rows;
    }

    static List<RawRecord> ReadJsonLines(string path, string shownAs)
    {
        var rows = new List<RawRecord>();
        int line = 0;
        foreach (var text in System.IO.File.ReadLines(path))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            var loc = line.ToString(System.Globalization.CultureInfo.InvariantCulture);
            try
            {
                using var doc = JsonDocument.Parse(text);
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    rows.Add(new RawRecord(shownAs, loc, null, $"expected a JSON object, found {Describe(doc.RootElement.ValueKind)}"));
                else rows.Add(new RawRecord(shownAs, loc, doc.RootElement.Clone(), null));
            }
            catch (JsonException e)
            {
                rows.Add(new RawRecord(shownAs, loc, null, $"not valid JSON ({e.Message})"));
            }
        }
        return rows;
    }

    static List<RawRecord> ReadJson(string path, string shownAs, string recordsField)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(System.IO.File.ReadAllText(path)); }
        catch (JsonException e) { throw new DataFormatException(shownAs, e.LineNumber is long l ? (l + 1).ToString(System.Globalization.CultureInfo.InvariantCulture) : null, null, $"not valid JSON ({e.Message})", e); }
        using (doc)
        {
            var root = doc.RootElement;
            string prefix = "";
            if (root.ValueKind == JsonValueKind.Object)
            {
                if (!root.TryGetProperty(recordsField, out var arr) || arr.ValueKind != JsonValueKind.Array)
                    throw new DataFormatException(shownAs, null, recordsField,
                        $"expected a JSON array of rows or an object with an array field '{recordsField}'; the object has: {string.Join(", ", root.EnumerateObject().Select(p => p.Name))}");
                root = arr;
                prefix = recordsField;
            }
            else if (root.ValueKind != JsonValueKind.Array)
                throw new DataFormatException(shownAs, null, null, $"expected a JSON array of rows or an object with an array field '{recordsField}', found {Describe(root.ValueKind)}");
            var rows = new List<RawRecord>();
            int i = 0;
            foreach (var el in root.EnumerateArray())
            {
                var loc = $"{prefix}[{i++}]";
                rows.Add(el.ValueKind == JsonValueKind.Object
                    ? new RawRecord(shownAs, loc, el.Clone(), null)
                    : new RawRecord(shownAs, loc, null, $"expected a JSON object, found {Describe(el.ValueKind)}"));
            }
            return rows;
        }
    }

    static List<RawRecord> ReadParquet(string path, string shownAs)
    {
        IList<Dictionary<string, object>> data;
        try
        {
            using var stream = System.IO.File.OpenRead(path);
            data = Parquet.Serialization.ParquetSerializer.DeserializeUntypedAsync(stream).GetAwaiter().GetResult().Data;
        }
        catch (Exception e) when (e is not DataFormatException)
        {
            throw new DataFormatException(shownAs, null, null, $"not a readable Parquet file ({e.Message})", e);
        }
        var rows = new List<RawRecord>(data.Count);
        for (int i = 0; i < data.Count; i++)
        {
            var obj = new JsonObject();
            foreach (var (k, v) in data[i]) obj[k] = ToNode(v);
            rows.Add(new RawRecord(shownAs, $"row {i}", JsonSerializer.SerializeToElement(obj), null));
        }
        return rows;
    }

    /// <summary>A Parquet value as JSON: strings (also ReadOnlyMemory&lt;char&gt;), numbers, booleans, lists, groups.</summary>
    static JsonNode? ToNode(object? v) => v switch
    {
        null => null,
        string s => JsonValue.Create(s),
        ReadOnlyMemory<char> m => JsonValue.Create(m.ToString()),
        bool b => JsonValue.Create(b),
        byte or sbyte or short or ushort or int or uint or long or ulong => JsonValue.Create(Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture)),
        float f => JsonValue.Create((double)f),
        double d => JsonValue.Create(d),
        decimal m => JsonValue.Create(m),
        DateTime t => JsonValue.Create(t.ToString("O", System.Globalization.CultureInfo.InvariantCulture)),
        byte[] bytes => JsonValue.Create(Convert.ToBase64String(bytes)),
        IDictionary dict => ToObject(dict),
        IEnumerable list => new JsonArray(list.Cast<object?>().Select(ToNode).ToArray()),
        _ => JsonValue.Create(v.ToString()),
    };

    static JsonObject ToObject(IDictionary dict)
    {
        var o = new JsonObject();
        foreach (DictionaryEntry e in dict) o[e.Key.ToString() ?? ""] = ToNode(e.Value);
        return o;
    }

    internal static string Describe(JsonValueKind k) => k switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => k.ToString(),
    };
}
