using System.Text.Json;
using System.Text.Json.Nodes;

namespace SimKO.Host;

/// <summary>JSON Lines input of the commands: every non-blank line must be a JSON object; a bad
/// line is an error naming the source and the line.</summary>
public static class JsonLines
{
    /// <summary>(line number, object) of each non-blank line; <paramref name="error"/> makes the
    /// exception for a message such as "<c>file:3: not valid JSON: …</c>".</summary>
    public static IEnumerable<(int Line, JsonObject Object)> Objects(TextReader input, string source, string expected, Func<string, Exception> error)
    {
        int lineNo = 0;
        for (string? line; (line = input.ReadLine()) is not null;)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(line); }
            catch (JsonException e) { throw error($"{source}:{lineNo}: not valid JSON: {e.Message}"); }
            if (node is not JsonObject obj) throw error($"{source}:{lineNo}: expected {expected}");
            yield return (lineNo, obj);
        }
    }
}
