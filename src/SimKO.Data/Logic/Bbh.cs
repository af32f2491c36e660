using System.Globalization;
using System.Text;
using System.Text.Json;
using SimKO.Data.Math;

namespace SimKO.Data.Logic;

/// <summary>One BIG-Bench Hard example: its task, the input text and the target answer.</summary>
public sealed record BbhProblem(string Id, string Task, string Input, string Target);

/// <summary>
/// BIG-Bench Hard (Suzgun et al.): the 27 task files as published (<c>{"examples": [{"input", "target"}]}</c>),
/// and BBH's scoring: exact match of the model's final answer with the target after normalising case,
/// spaces, a closing period, <c>$…$</c> / <c>\text{…}</c> wrappers and the parentheses of a
/// multiple-choice letter (<c>(B)</c>, <c>B</c>, <c>B)</c>, <c>(B) Frankenstein</c> all match a target <c>(B)</c>);
/// numbers compare as numbers, bracket sequences (Dyck) ignore spaces. The final answer is the last
/// <c>\boxed{…}</c>, else what follows the last "the answer is", else a completion of one short line.
/// Results are reported per task and as the unweighted mean over tasks.
/// </summary>
public static class Bbh
{
    /// <summary>The 27 tasks, in the order of the published files (alphabetical).</summary>
    public static IReadOnlyList<string> Tasks { get; } =
    [
        "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa", "dyck_languages",
        "formal_fallacies", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
        "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
        "multistep_arithmetic_two", "navigate", "object_counting", "penguins_in_a_table",
        "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection", "snarks",
        "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
        "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects", "web_of_lies", "word_sorting",
    ];

    /// <summary>Whether a name selects BBH: <c>bbh</c> (all tasks) or <c>bbh/&lt;task&gt;</c>.</summary>
    public static bool IsBbh(string name) => name == "bbh" || name.StartsWith("bbh/", StringComparison.Ordinal);

    /// <summary>The tasks a name selects (<c>bbh</c>: all 27; <c>bbh/&lt;task&gt;</c>: that one).</summary>
    public static IReadOnlyList<string> Select(string name)
    {
        if (name == "bbh") return Tasks;
        var task = name.StartsWith("bbh/", StringComparison.Ordinal) ? name[4..] : name;
        return Tasks.Contains(task) ? [task]
            : throw new DatasetException($"unknown BBH task '{task}'; known: {string.Join(", ", Tasks)}");
    }

    /// <summary><c>&lt;root&gt;/bbh/&lt;task&gt;.json</c>.</summary>
    public static string PathOf(string task, string? root = null)
    {
        root ??= Datasets.DefaultRoot() ?? throw new DatasetException(
            "no dataset root given and no SimKO.sln above the program to find ../shared/datasets from");
        return Path.Combine(root, "bbh", task + ".json");
    }

    /// <summary>Every example of one task file; a malformed file or example is an error naming the
    /// file, the example's index and what was expected.</summary>
    public static IReadOnlyList<BbhProblem> Load(string task, string? root = null)
    {
        var path = PathOf(Select(task)[0], root);
        if (!File.Exists(path)) throw new DatasetException($"{path}: no such file (BBH task '{task}')");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllText(path, Encoding.UTF8)); }
        catch (JsonException e) { throw new DatasetException($"{path}: not valid JSON: {e.Message}"); }
        using (doc)
        {
            var top = doc.RootElement;
            if (top.ValueKind != JsonValueKind.Object || !top.TryGetProperty("examples", out var examples) || examples.ValueKind != JsonValueKind.Array)
                throw new DatasetException($"{path}: expected an object with an 'examples' list" +
                    (top.ValueKind == JsonValueKind.Object ? $" (fields present: {string.Join(", ", top.EnumerateObject().Select(p => p.Name))})" : $", got {top.ValueKind}"));
            var rows = new List<BbhProblem>();
            int i = 0;
            foreach (var e in examples.EnumerateArray())
            {
                string Field(string name)
                {
                    if (e.ValueKind != JsonValueKind.Object) throw new DatasetException($"{path}: examples[{i}]: expected an object, got {e.ValueKind}");
                    if (!e.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.String)
                        throw new DatasetException($"{path}: examples[{i}]: missing string field '{name}' (fields present: {string.Join(", ", e.EnumerateObject().Select(p => p.Name))})");
                    return v.GetString()!;
                }
                var input = Field("input");
                var target = Field("target");
                if (Normalize(target).Length == 0) throw new DatasetException($"{path}: examples[{i}]: the target is empty");
                rows.Add(new BbhProblem($"bbh/{Path.GetFileNameWithoutExtension(path)}/{i}", Path.GetFileNameWithoutExtension(path), input, target));
                i++;
            }
            if (rows.Count == 0) throw new DatasetException($"{path}: 'examples' is empty");
            return rows;
        }
    }

    /// <summary>The model's final answer: the last \boxed{}, else after the last "the answer is", else a
    /// completion of one short line (a bare answer); null when there is none.</summary>
    public static string? ExtractAnswer(string? completion)
    {
        if (string.IsNullOrWhiteSpace(completion)) return null;
        var answer = AnswerExtraction.LastBoxed(completion) ?? AnswerExtraction.TheAnswerIs(completion);
        if (answer is not null) return answer;
        var text = completion.Trim();
        return text.Contains('\n') || text.Length > 200 ? null : text;
    }

    /// <summary>The extracted answer and whether it matches the target.</summary>
    public static (string? Extracted, bool Correct) Grade(string completion, string target)
    {
        var answer = ExtractAnswer(completion);
        return (answer, answer is not null && Matches(answer, target));
    }

    /// <summary>Whether an answer matches a BBH target (see the class summary for the rules).</summary>
    public static bool Matches(string answer, string target)
    {
        var t = Normalize(target);
        var a = Normalize(answer);
        if (t.Length == 0 || a.Length == 0) return false;
        if (IsOptionLetter(t))
        {
            if (a.StartsWith("option ", StringComparison.Ordinal)) a = a[7..].TrimStart();
            if (a.Length >= 3 && a[0] == '(' && a[2] == ')') return a[1] == t[1];
            if (a.Length == 1 || (a.Length >= 2 && a[1] is ')' or ' ' or '.' or ':')) return a[0] == t[1];
            return false;
        }
        if (a == t) return true;
        if (double.TryParse(a, NumberStyles.Float, CultureInfo.InvariantCulture, out var x)
            && double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var y))
            return x == y;
        if (t.All(c => !char.IsLetterOrDigit(c)))
            return string.Concat(a.Where(c => !char.IsWhiteSpace(c))) == string.Concat(t.Where(c => !char.IsWhiteSpace(c)));
        return false;
    }

    static bool IsOptionLetter(string t) => t.Length == 3 && t[0] == '(' && t[2] == ')' && char.IsAsciiLetterLower(t[1]);

    /// <summary>Lower case, single spaces, no closing period, no <c>$…$</c> or <c>\text{…}</c> wrapper, <c>\{</c> as <c>{</c>, '−' as '-'.</summary>
    public static string Normalize(string s)
    {
        s = s.Trim();
        if (s.Length >= 2 && s[0] == '$' && s[^1] == '$') s = s.Trim('$').Trim();
        foreach (var wrapper in new[] { "\\text{", "\\textbf{", "\\mathrm{" })
            if (s.StartsWith(wrapper, StringComparison.Ordinal) && s.EndsWith('}')) { s = s[wrapper.Length..^1].Trim(); break; }
        s = s.Replace("\\{", "{").Replace("\\}", "}");
        var sb = new StringBuilder(s.Length);
        bool space = false;
        foreach (char ch in s)
        {
            char c = ch == '\u2212' ? '-' : ch;
            if (char.IsWhiteSpace(c)) { space = sb.Length > 0; continue; }
            if (space) { sb.Append(' '); space = false; }
            sb.Append(char.ToLowerInvariant(c));
        }
        while (sb.Length > 0 && sb[^1] == '.') sb.Length--;
        return sb.ToString().TrimEnd();
    }
}
