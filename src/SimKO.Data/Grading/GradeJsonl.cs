using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SimKO.Data.Grading;

/// <summary>Counts of one <see cref="GradeJsonl.Run"/>.</summary>
public sealed record GradeSummary(int Lines, int Correct);

/// <summary>
/// The <c>simko grade</c> file format: each line <c>{"prediction": …, "reference": …}</c> (prediction: a full
/// completion or a bare answer; reference: a string, a number, or a list of answers that must all be given; an
/// optional <c>"unit"</c>) is written back unchanged with <c>"extracted"</c> (string or null) and
/// <c>"correct"</c> (true/false) added, so the verifier can be compared with other graders. Blank lines are
/// not rows.
/// </summary>
public static class GradeJsonl
{
    static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Grades every line of <paramref name="input"/> into <paramref name="output"/>.</summary>
    /// <param name="source">Name of the input in error messages (a path or <c>stdin</c>).</param>
    /// <exception cref="DataFormatException">A line that is not a JSON object with a string prediction and a usable reference.</exception>
    public static GradeSummary Run(TextReader input, TextWriter output, IVerifier verifier, string source)
    {
        int lines = 0, correct = 0, number = 0;
        string? text;
        while ((text = input.ReadLine()) is not null)
        {
            number++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            var (obj, problem, prediction) = ParseLine(text, source, number);
            var grade = verifier.Grade(problem, prediction);
            obj["extracted"] = grade.Extracted;
            obj["correct"] = grade.Correct;
            output.WriteLine(obj.ToJsonString(Compact));
            lines++;
            if (grade.Correct) correct++;
        }
        output.Flush();
        return new GradeSummary(lines, correct);
    }

    /// <summary>Every (problem, prediction) pair of a grade file, e.g. to benchmark on real predictions.</summary>
    public static IReadOnlyList<(Problem Problem, string Prediction)> ReadPairs(TextReader input, string source)
    {
        var pairs = new List<(Problem, string)>();
        int number = 0;
        string? text;
        while ((text = input.ReadLine()) is not null)
        {
            number++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            var (_, problem, prediction) = ParseLine(text, source, number);
            pairs.Add((problem, prediction));
        }
        if (pairs.Count == 0) throw new DataFormatException(source, null, null, "the input has no rows");
        return pairs;
    }

    static (JsonObject Obj, Problem Problem, string Prediction) ParseLine(string text, string source, int number)
    {
        var loc = number.ToString(System.Globalization.CultureInfo.InvariantCulture);
        JsonNode? node;
        try { node = JsonNode.Parse(text); }
        catch (JsonException e) { throw new DataFormatException(source, loc, null, $"not valid JSON ({e.Message})", e); }
        if (node is not JsonObject obj)
            throw new DataFormatException(source, loc, null, $"expected a JSON object with \"prediction\" and \"reference\", found {Kind(node)}");
        var prediction = obj["prediction"] switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.ToJsonString(),
            null => throw Missing(source, loc, obj, "prediction"),
            var other => throw new DataFormatException(source, loc, "prediction", $"field 'prediction' is {Kind(other)}; expected a string"),
        };
        var referenceNode = obj["reference"] ?? throw Missing(source, loc, obj, "reference");
        string reference;
        bool multiple = false;
        switch (referenceNode)
        {
            case JsonValue v when v.TryGetValue<string>(out var s): reference = s; break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.Number: reference = v.ToJsonString(); break;
            case JsonArray a when a.Count > 0 && a.All(x => x is JsonValue xv && (xv.GetValueKind() is JsonValueKind.String or JsonValueKind.Number)):
                reference = string.Join(",", a.Select(x => x!.GetValueKind() == JsonValueKind.String ? x.GetValue<string>() : x.ToJsonString()));
                multiple = a.Count > 1;
                break;
            default:
                throw new DataFormatException(source, loc, "reference", $"field 'reference' is {Kind(referenceNode)}; expected a string, a number or a non-empty list of them");
        }
        string? unit = obj["unit"] is JsonValue u && u.TryGetValue<string>(out var us) ? us : null;
        if (obj["is_multiple_answer"] is JsonValue m && m.TryGetValue<bool>(out var mb)) multiple = mb;
        var problem = new Problem($"{source}:{loc}", "", reference) { Unit = unit, IsMultipleAnswer = multiple, Source = $"{source}:{loc}" };
        return (obj, problem, prediction);
    }

    static DataFormatException Missing(string source, string loc, JsonObject obj, string field) =>
        new(source, loc, field, $"field '{field}' is missing; the row has: {string.Join(", ", obj.Select(p => p.Key))}");

    static string Kind(JsonNode? n) => n switch
    {
        null => "null",
        JsonObject => "an object",
        JsonArray => "an array",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => "a string",
            JsonValueKind.Number => "a number",
            JsonValueKind.True or JsonValueKind.False => "a boolean",
            _ => "a value",
        },
        _ => "a value",
    };
}
