using System.Text.Json;
using System.Text.Json.Nodes;
using SimKO.Data.Json;
using Microsoft.FSharp.Core;
using SimKO.Data.Logic;
using SimKO.Data.Math;
using GradeTask = SimKO.Cli.GradeArgs.GradeTask;

namespace SimKO.Host.Commands;

/// <summary>
/// `simko grade`: reads JSON lines <c>{"prediction": …, "reference": …}</c> (other fields are kept)
/// and writes each line back with <c>"extracted"</c> (the answer found in the prediction, or null)
/// and <c>"correct"</c> added, graded the way the task says (<see cref="GraderFor"/>: the math
/// verifier by default, or BBH's scoring). Blank lines are skipped.
/// </summary>
public static class GradeCommand
{
    /// <summary>How a task grades one prediction against its reference: the answer it extracted
    /// (null when none) and whether that answer is correct.</summary>
    public delegate (string? Extracted, bool Correct) Grader(string prediction, string reference);

    /// <summary>The grader of a task; the one place a new task is added. Throws a
    /// <see cref="DatasetException"/> listing the tasks for an unknown BBH task.</summary>
    public static Grader GraderFor(GradeTask task) => task switch
    {
        { IsMath: true } => (prediction, reference) => MathGrader.Grade(prediction, reference),
        GradeTask.Bbh bbh => BbhGrader(OptionModule.ToObj(bbh.task)),
        { IsHumanEval: true } => throw new ArgumentException("humaneval grades {task_id, completion} lines by running them: use RunHumanEval"),
        _ => throw new ArgumentOutOfRangeException(nameof(task), task, "no grader for this task"),
    };

    /// <summary>BBH's scoring, with one task's answer format (<see cref="Bbh.FormatOf"/>) when named.</summary>
    static Grader BbhGrader(string? task)
    {
        var format = task is null ? BbhAnswerFormat.FromTarget : Bbh.FormatOf(task);
        return (prediction, reference) => Bbh.Grade(prediction, reference, format);
    }

    /// <summary>`grade --task humaneval`: <c>{"task_id", "completion"}</c> lines run with their problem's unit
    /// tests in the sandbox, written back with <c>passed</c> and <c>result</c>.</summary>
    public static int RunHumanEval(string? problemsPath, string? inputPath, string? outputPath, bool unsafeNoSandbox)
    {
        var source = inputPath ?? "<stdin>";
        try
        {
            IReadOnlyList<string> lines = inputPath is null ? ReadAll(Console.In) : File.ReadAllLines(inputPath);  // graded in one batch
            Runs.SharedSandbox.AllowUnisolated(unsafeNoSandbox);
            var grader = new SimKO.Data.Code.HumanEvalGrader(SimKO.Data.Code.HumanEval.Load(problemsPath), Runs.SharedSandbox.Pool);
            var rows = grader.GradeLines(lines, source);
            void Write(TextWriter w) { foreach (var r in rows) w.WriteLine(r.ToJsonString()); }
            if (outputPath is null) { Write(Console.Out); Console.Out.Flush(); }
            else AtomicFile.Write(outputPath, stream => { using var w = new StreamWriter(stream, leaveOpen: true); Write(w); });
            Console.Error.WriteLine($"graded {rows.Count} completions, {rows.Count(r => r["passed"]!.GetValue<bool>())} passed{(outputPath is null ? "" : $" → {outputPath}")}");
            return 0;
        }
        catch (Exception e) when (e is DatasetException or IOException or UnauthorizedAccessException or SimKO.Data.Sandbox.SandboxUnavailableException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    static List<string> ReadAll(TextReader r)
    {
        var lines = new List<string>();
        for (string? l; (l = r.ReadLine()) is not null;) lines.Add(l);
        return lines;
    }

    public static int Run(GradeTask task, string? inputPath, string? outputPath)
    {
        Grader grader;
        try { grader = GraderFor(task); }
        catch (DatasetException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
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
                    var (graded, correct) = Grade(reader, Console.Out, grader, source);
                    Console.Out.Flush();
                    Console.Error.WriteLine($"graded {graded} lines, {correct} correct");
                }
                else
                {
                    (int, int) counts = default;
                    AtomicFile.Write(outputPath, stream =>
                    {
                        using var w = new StreamWriter(stream, leaveOpen: true);
                        counts = Grade(reader, w, grader, source);
                    });
                    Console.Error.WriteLine($"graded {counts.Item1} lines, {counts.Item2} correct → {outputPath}");
                }
            }
            return 0;
        }
        catch (InputException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"error: {source}: {e.Message}");
            return 2;
        }
    }

    /// <summary>Grades every line of <paramref name="input"/> onto <paramref name="output"/> with
    /// <paramref name="grader"/>; returns (lines graded, lines correct). Errors name the source and the
    /// line: "<c>source:N: message</c>".</summary>
    public static (int Graded, int Correct) Grade(TextReader input, TextWriter output, Grader grader, string source = "<stdin>")
    {
        int graded = 0, correct = 0;
        foreach (var (lineNo, obj) in JsonLines.Objects(input, source, "a JSON object {\"prediction\", \"reference\"}", m => new InputException(m)))
        {
            var result = GradeObject(obj, $"{source}:{lineNo}", grader);
            output.WriteLine(result.ToJsonString());
            graded++;
            if (result["correct"]!.GetValue<bool>()) correct++;
        }
        return (graded, correct);
    }

    /// <summary>One input line's object with "extracted" and "correct" added by <paramref name="grader"/>;
    /// <paramref name="where"/> ("file:line") starts every error.</summary>
    public static JsonObject GradeObject(JsonObject obj, string where, Grader grader)
    {
        var prediction = Text(obj, "prediction", where);
        var reference = Text(obj, "reference", where);
        var (extracted, ok) = grader(prediction, reference);
        obj["extracted"] = extracted;
        obj["correct"] = ok;
        return obj;
    }

    /// <summary>A string field, or a number's text (amc23 writes answers as 27.0).</summary>
    static string Text(JsonObject obj, string field, string where) => obj[field] switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.ToJsonString(),
        null => throw new InputException(
            $"{where}: missing field '{field}' (fields present: {string.Join(", ", obj.Select(p => p.Key))})"),
        var other => throw new InputException($"{where}: field '{field}' must be a string or a number, got {other.ToJsonString()}"),
    };
}
