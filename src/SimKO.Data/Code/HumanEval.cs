using System.Text.Json.Nodes;
using SimKO.Data.Json;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using SimKO.Data.Math;

namespace SimKO.Data.Code;

/// <summary>One HumanEval problem as published: the prompt (signature and docstring), the reference body,
/// the unit tests (a <c>check(candidate)</c> function) and the name of the function under test.</summary>
public sealed record HumanEvalProblem(string TaskId, string Prompt, string CanonicalSolution, string Test, string EntryPoint);

/// <summary>
/// HumanEval (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"): 164 hand-written
/// Python problems, read from the published <c>HumanEval.jsonl.gz</c> (gzip read directly). A completion is
/// graded by running prompt + completion + tests + <c>check(entry_point)</c>, as the original harness does.
/// </summary>
public static class HumanEval
{
    /// <summary>Problems in the published file.</summary>
    public const int ProblemCount = 164;

    /// <summary><c>&lt;datasets root&gt;/humaneval/HumanEval.jsonl.gz</c>; the root defaults to <c>../shared/datasets</c>
    /// next to the repository.</summary>
    public static string DefaultPath(string? datasetsRoot = null)
    {
        datasetsRoot ??= Datasets.DefaultRoot() ?? throw new DatasetException(
            "no dataset root given and no SimKO.sln above the program to find ../shared/datasets from");
        return Path.Combine(datasetsRoot, "humaneval", "HumanEval.jsonl.gz");
    }

    /// <summary>Every problem of a HumanEval-format file (<c>.jsonl</c>, or <c>.jsonl.gz</c> read through gzip),
    /// in file order: a code dataset for training in the same format may leave out <c>canonical_solution</c>
    /// (then empty). A row without task_id, prompt, test or entry_point as strings, a repeated task_id or a line
    /// that is not JSON fails with the file, line and field.</summary>
    public static List<HumanEvalProblem> Load(string? path = null)
    {
        path ??= DefaultPath();
        if (!File.Exists(path)) throw new DatasetException($"{path}: HumanEval file not found");
        var problems = new List<HumanEvalProblem>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (lineNo, obj) in JsonLines.File(path, "a JSON object (a HumanEval problem)", m => new DatasetException(m)))
        {
            string Field(string name) =>
                obj[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
                : throw new DatasetException($"{path}:{lineNo}: field '{name}' is missing or not a string");
            string canonical = obj["canonical_solution"] switch
            {
                null => "",
                JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
                _ => throw new DatasetException($"{path}:{lineNo}: field 'canonical_solution' is not a string"),
            };
            var p = new HumanEvalProblem(Field("task_id"), Field("prompt"), canonical, Field("test"), Field("entry_point"));
            if (!seen.Add(p.TaskId)) throw new DatasetException($"{path}:{lineNo}: field 'task_id': '{p.TaskId}' appears twice");
            if (p.EntryPoint.Length == 0) throw new DatasetException($"{path}:{lineNo}: field 'entry_point' is empty");
            problems.Add(p);
        }
        if (problems.Count == 0) throw new DatasetException($"{path}: no problems in the file");
        return problems;
    }

    /// <summary>The program that grades a completion: prompt + completion + "\n" + tests + "\n" + <c>check(entry_point)</c>
    /// (the original harness's <c>check_program</c>).</summary>
    public static string Program(HumanEvalProblem p, string completion) =>
        p.Prompt + completion + "\n" + p.Test + "\n" + $"check({p.EntryPoint})";
}

/// <summary>
/// The code prompt: the model continues the function from its signature and docstring (HumanEval's own
/// prompt, unchanged, as in the Codex paper), and sampling stops at the end of the function: a new top-level
/// statement. Stop sequences are the Codex paper's.
/// </summary>
public static class CodePrompt
{
    /// <summary>Where a function body ends: the next top-level class, def, comment, if or print (Chen et al. 2021, §3.3).</summary>
    public static IReadOnlyList<string> StopSequences { get; } = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"];

    /// <summary>The text the model continues.</summary>
    public static string Format(HumanEvalProblem p) => p.Prompt;

    /// <summary>The completion up to (not including) its first stop sequence.</summary>
    public static string Truncate(string completion)
    {
        int cut = completion.Length;
        foreach (var stop in StopSequences)
        {
            int i = completion.IndexOf(stop, StringComparison.Ordinal);
            if (i >= 0 && i < cut) cut = i;
        }
        return completion[..cut];
    }
}
