using System.Text.Json;
using System.Text.Json.Nodes;
using SimKO.Data.Math;

namespace SimKO.Host.Commands;

/// <summary>
/// `simko grade`: reads JSON lines <c>{"prediction": …, "reference": …}</c> (other fields are kept)
/// and writes each line back with <c>"extracted"</c> (the answer found in the prediction, or null)
/// and <c>"correct"</c> added, graded by <see cref="MathGrader"/>. Blank lines are skipped.
/// </summary>
public static class GradeCommand
{
    /// <summary>A problem with one input line, naming the line and the field.</summary>
    public sealed class InputException(string message) : Exception(message);

    public static int Run(string? inputPath, string? outputPath)
    {
        var source = inputPath ?? "<stdin>";
        TextReader reader;
        try { reader = inputPath is null ? Console.In : new StreamReader(inputPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: cannot read {inputPath}: {e.Message}");
            return 2;
        }
        try
        {
            using (reader)
            {
                if (outputPath is null)
                {
                    var (graded, correct) = Grade(reader, Console.Out);
                    Console.Out.Flush();
                    Console.Error.WriteLine($"graded {graded} lines, {correct} correct");
                }
                else
                {
                    (int, int) counts = default;
                    AtomicFile.Write(outputPath, stream =>
                    {
                        using var w = new StreamWriter(stream, leaveOpen: true);
                        counts = Grade(reader, w);
                    });
                    Console.Error.WriteLine($"graded {counts.Item1} lines, {counts.Item2} correct → {outputPath}");
                }
            }
            return 0;
        }
        catch (InputException e)
        {
            Console.Error.WriteLine($"error: {source}:{e.Message}");
            return 2;
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"error: {source}: {e.Message}");
            return 2;
        }
    }

    /// <summary>Grades every line of <paramref name="input"/> onto <paramref name="output"/>;
    /// returns (lines graded, lines correct). Errors name the line: "<c>N: message</c>".</summary>
    public static (int Graded, int Correct) Grade(TextReader input, TextWriter output)
    {
        int lineNo = 0, graded = 0, correct = 0;
        string? line;
        while ((line = input.ReadLine()) is not null)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var result = GradeLine(line, lineNo);
            output.WriteLine(result.ToJsonString());
            graded++;
            if (result["correct"]!.GetValue<bool>()) correct++;
        }
        return (graded, correct);
    }

    /// <summary>One input line's object with "extracted" and "correct" added.</summary>
    public static JsonObject GradeLine(string line, int lineNo)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(line); }
        catch (JsonException e) { throw new InputException($"{lineNo}: not valid JSON: {e.Message}"); }
        if (node is not JsonObject obj) throw new InputException($"{lineNo}: expected a JSON object");
        var prediction = Text(obj, "prediction", lineNo);
        var reference = Text(obj, "reference", lineNo);
        var (extracted, ok) = MathGrader.Grade(prediction, reference);
        obj["extracted"] = extracted;
        obj["correct"] = ok;
        return obj;
    }

    /// <summary>A string field, or a number's text (amc23 writes answers as 27.0).</summary>
    static string Text(JsonObject obj, string field, int lineNo) => obj[field] switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.ToJsonString(),
        null => throw new InputException(
            $"{lineNo}: missing field '{field}' (fields present: {string.Join(", ", obj.Select(p => p.Key))})"),
        var other => throw new InputException($"{lineNo}: field '{field}' must be a string or a number, got {other.ToJsonString()}"),
    };
}
