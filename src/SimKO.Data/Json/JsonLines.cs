using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SimKO.Data.Json;

/// <summary>
/// The one JSON Lines reader of every command and dataset: each non-blank line must be a JSON
/// object; a bad line is an error naming the source and the line ("<c>file:3: not valid JSON: …</c>",
/// "<c>file:4: expected an object {"text": …}, got a list</c>"). Blank lines are skipped but counted,
/// so line numbers are the file's.
/// </summary>
public static class JsonLines
{
    /// <summary>(line number, object) of each non-blank line of <paramref name="lines"/>;
    /// <paramref name="expected"/> says what a line must be; <paramref name="error"/> makes the
    /// caller's exception from a message that starts with <paramref name="source"/> and the line.</summary>
    public static IEnumerable<(int Line, JsonObject Object)> Objects(IEnumerable<string> lines, string source, string expected, Func<string, Exception> error) =>
        Objects(lines, source, expected, error, null);

    /// <summary>The same; with <paramref name="bad"/> a line that is not valid JSON or not an object is
    /// given to it (its message) and skipped instead of thrown.</summary>
    public static IEnumerable<(int Line, JsonObject Object)> Objects(IEnumerable<string> lines, string source, string expected, Func<string, Exception> error, Action<string>? bad)
    {
        int lineNo = 0;
        foreach (var line in lines)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            string? why = null;
            try { node = JsonNode.Parse(line); }
            catch (JsonException e) { node = null; why = $"{source}:{lineNo}: not valid JSON: {e.Message}"; }
            if (why is null && node is not JsonObject) why = $"{source}:{lineNo}: expected {expected}, got {KindOf(node)}";
            if (why is not null)
            {
                if (bad is null) throw error(why);
                bad(why);
                continue;
            }
            yield return (lineNo, (JsonObject)node!);
        }
    }

    /// <summary>The same over a reader (stdin, a stream).</summary>
    public static IEnumerable<(int Line, JsonObject Object)> Objects(TextReader input, string source, string expected, Func<string, Exception> error) =>
        Objects(LinesOf(input), source, expected, error);

    /// <summary>The same over a file, UTF-8, read through gzip when its name ends in <c>.gz</c>; a
    /// missing file or a damaged gzip stream is an error naming the file (and the line reached).</summary>
    public static IEnumerable<(int Line, JsonObject Object)> File(string path, string expected, Func<string, Exception> error, Action<string>? bad = null)
    {
        if (!System.IO.File.Exists(path)) throw error($"{path}: no such file");
        using var file = System.IO.File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var reader = new StreamReader(stream, Encoding.UTF8);
        int reached = 0;
        using var rows = Objects(LinesOf(reader), path, expected, error, bad).GetEnumerator();
        while (true)
        {
            bool more;
            try { more = rows.MoveNext(); }
            catch (InvalidDataException e) { throw error($"{path}:{reached + 1}: not readable as gzip ({e.Message})"); }
            if (!more) yield break;
            reached = rows.Current.Line;
            yield return rows.Current;
        }
    }

    static IEnumerable<string> LinesOf(TextReader input)
    {
        for (string? line; (line = input.ReadLine()) is not null;) yield return line;
    }

    /// <summary>A JSON value's type for messages: "a string", "a number", "a list", "null" …</summary>
    public static string KindOf(JsonNode? node) => node switch
    {
        null => "null",
        JsonArray => "a list",
        JsonObject => "an object",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => "a string",
            JsonValueKind.Number => "a number",
            JsonValueKind.True or JsonValueKind.False => "a boolean",
            _ => "null",
        },
        _ => "a value",
    };
}
