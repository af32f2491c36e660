using SimKO.Data.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using SimKO.Data.Math;
using SimKO.Data.Sandbox;

namespace SimKO.Data.Code;

/// <summary>A completion for one problem: its task_id and the code that continues the prompt.</summary>
public sealed record CodeSample(string TaskId, string Completion);

/// <summary>
/// Grades HumanEval completions by running each problem's unit tests on them in the sandbox
/// (<see cref="SandboxPool"/>, in parallel). Per sample: passed or not, and the result text
/// ("passed", "failed: AssertionError: …", "timed out", …). pass@k is computed from these elsewhere.
/// </summary>
public sealed class HumanEvalGrader
{
    readonly Dictionary<string, HumanEvalProblem> _problems;
    public SandboxPool Pool { get; }

    public HumanEvalGrader(IEnumerable<HumanEvalProblem> problems, SandboxPool pool)
    {
        _problems = problems.ToDictionary(p => p.TaskId, StringComparer.Ordinal);
        Pool = pool;
    }

    public HumanEvalProblem Problem(string taskId) =>
        _problems.TryGetValue(taskId, out var p) ? p : throw new ArgumentException($"unknown task_id '{taskId}'");

    /// <summary>Each sample's verdict, in order (a sample for an unknown task_id throws before anything runs).</summary>
    public GradeResult[] Grade(IReadOnlyList<CodeSample> samples)
    {
        var programs = samples.Select(s => HumanEval.Program(Problem(s.TaskId), s.Completion)).ToArray();
        return Pool.GradeMany(programs);
    }

    /// <summary>
    /// Grades <c>{"task_id", "completion"}</c> JSONL lines (the original harness's sample format): returns each
    /// line's object with <c>passed</c> (bool) and <c>result</c> (string) added, in input order. Blank lines are
    /// skipped; a line that is not an object, lacks a string field or names an unknown task fails with
    /// <paramref name="source"/>, line and field, before anything runs.
    /// </summary>
    public List<JsonObject> GradeLines(IEnumerable<string> lines, string source)
    {
        var rows = new List<JsonObject>();
        var samples = new List<CodeSample>();
        foreach (var (lineNo, obj) in JsonLines.Objects(lines, source, "a JSON object {\"task_id\", \"completion\"}", m => new DatasetException(m)))
        {
            string Field(string name) =>
                obj[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s
                : throw new DatasetException($"{source}:{lineNo}: field '{name}' is missing or not a string");
            var taskId = Field("task_id");
            if (!_problems.ContainsKey(taskId)) throw new DatasetException($"{source}:{lineNo}: field 'task_id': unknown task '{taskId}'");
            samples.Add(new CodeSample(taskId, Field("completion")));
            rows.Add(obj);
        }
        var results = Grade(samples);
        for (int i = 0; i < rows.Count; i++)
        {
            rows[i]["passed"] = results[i].Passed;
            rows[i]["result"] = results[i].Describe();
        }
        return rows;
    }
}
