using System.Globalization;
using System.Text;
using System.Text.Json;
using SimKO.Data.Math;

namespace SimKO.Data.Logic;

/// <summary>One BIG-Bench Hard example: its task, the input text and the target answer.</summary>
public sealed record BbhProblem(string Id, string Task, string Input, string Target);

/// <summary>How a BBH task writes its answers, where grading depends on it.</summary>
public enum BbhAnswerFormat
{
    /// <summary>Read from each target: an option letter <c>(B)</c>, a number, a bracket sequence or text.</summary>
    FromTarget,
    /// <summary>Options (A), (B), …: also a target written as a bare letter (<c>B</c>, <c>B)</c>, <c>B.</c>) is
    /// the option <c>(B)</c>; a target that is not a letter (two rows of ruin_names and movie_recommendation
    /// give the option's text) is compared as text.</summary>
    MultipleChoice,
}

/// <summary>
/// BIG-Bench Hard (Suzgun et al.): the 27 task files as published (<c>{"examples": [{"input", "target"}]}</c>),
/// and BBH's scoring: exact match of the model's final answer with the target after normalising case,
/// spaces, a closing period, Markdown emphasis (<c>**(B)**</c>, <c>*True*</c>, <c>__valid__</c>),
/// <c>$…$</c> / <c>\text{…}</c> wrappers and the parentheses of a multiple-choice letter (<c>(B)</c>,
/// <c>B</c>, <c>B)</c>, <c>(B) Frankenstein</c> all match a target <c>(B)</c>). An answer that names more
/// than one option (<c>(A) or (B)</c>, <c>A and C</c>, <c>(A), (B)</c>, <c>(B) Frankenstein or (C) Dracula</c>)
/// is wrong, so hedging earns nothing. Numbers compare as numbers, bracket sequences (Dyck) ignore
/// spaces. The final answer is the last <c>\boxed{…}</c>, else what follows the last "the answer is",
/// else a completion of one short line. Results are reported per task and as the unweighted mean over tasks.
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

    static readonly HashSet<string> MultipleChoiceTasks =
    [
        "date_understanding", "disambiguation_qa", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
        "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation", "penguins_in_a_table",
        "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection", "snarks", "temporal_sequences",
        "tracking_shuffled_objects_five_objects", "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects",
    ];

    /// <summary>How a task (one of <see cref="Tasks"/>) writes its answers: the 17 tasks whose answers
    /// are options are <see cref="BbhAnswerFormat.MultipleChoice"/>, the others (yes/no, true/false,
    /// valid/invalid, numbers, bracket sequences, sorted words) <see cref="BbhAnswerFormat.FromTarget"/>.</summary>
    public static BbhAnswerFormat FormatOf(string task) =>
        !Tasks.Contains(task) ? throw new DatasetException($"unknown BBH task '{task}'; known: {string.Join(", ", Tasks)}")
        : MultipleChoiceTasks.Contains(task) ? BbhAnswerFormat.MultipleChoice : BbhAnswerFormat.FromTarget;

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

    /// <summary>The extracted answer and whether it matches the target (see the class summary).</summary>
    public static (string? Extracted, bool Correct) Grade(string completion, string target, BbhAnswerFormat format = BbhAnswerFormat.FromTarget)
    {
        var answer = ExtractAnswer(completion);
        return (answer, answer is not null && Matches(answer, target, format));
    }

    /// <summary>Whether an answer matches a BBH target (see the class summary for the rules).</summary>
    public static bool Matches(string answer, string target, BbhAnswerFormat format = BbhAnswerFormat.FromTarget)
    {
        var t = Normalize(target);
        var a = Normalize(answer);
        if (t.Length == 0 || a.Length == 0) return false;
        if (format == BbhAnswerFormat.MultipleChoice && (t.Length == 1 || (t.Length == 2 && t[1] is ')' or '.')) && char.IsAsciiLetterLower(t[0]))
            t = $"({t[0]})";
        if (IsOptionLetter(t))
        {
            var named = OptionsNamed(Normalize(answer, lower: false));
            return named.Count == 1 && named[0] == t[1];
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

    static readonly string[] Joiners = ["and/or", "versus", "and", "nor", "or", "vs.", "vs", ",", ";", "/", "&", "+"];

    /// <summary>The distinct option letters (lower case) that an answer, normalised but in its own
    /// case, names: the option it starts with (<c>(B)</c>, <c>B</c>, <c>b)</c>, <c>B.</c>, after an optional
    /// "option "), the options joined to it ("or", "and", ",", "/", "&amp;", …), and every other
    /// <c>(x)</c> later in the answer. A bare letter after a joiner counts when it is upper case or ends
    /// the list (<c>a and c</c>), so the article of <c>(B), a heptagon</c> or <c>(B) a beautiful mind</c>
    /// names no option. Empty when the answer does not start with an option.</summary>
    static List<char> OptionsNamed(string cased)
    {
        var a = cased.ToLowerInvariant();
        var letters = new List<char>();
        int i = 0;
        SkipWord(a, ref i, "option");
        if (!TryOption(a, ref i, bare: true, out var first)) return letters;
        letters.Add(first);
        while (true)
        {
            int j = i;
            bool joined = false;
            while (true)
            {
                while (j < a.Length && a[j] == ' ') j++;
                var joiner = Joiners.FirstOrDefault(w => a.AsSpan(j).StartsWith(w, StringComparison.Ordinal)
                    && (!char.IsAsciiLetter(w[^1]) || j + w.Length == a.Length || !char.IsAsciiLetter(a[j + w.Length])));
                if (joiner is null) break;
                j += joiner.Length;
                joined = true;
            }
            while (j < a.Length && a[j] == ' ') j++;
            SkipWord(a, ref j, "option");
            int at = j;
            if (!TryOption(a, ref j, bare: joined, out var next)) break;
            bool parenthesised = a[at] == '(';
            bool endsList = j == a.Length || a[j] != ' ' || Joiners.Any(w => a.AsSpan(j + 1).StartsWith(w, StringComparison.Ordinal));
            if (!parenthesised && !char.IsUpper(cased[at]) && !endsList) break;
            letters.Add(next);
            i = j;
        }
        for (int k = i; k + 2 < a.Length; k++)
            if (a[k] == '(' && char.IsAsciiLetterLower(a[k + 1]) && a[k + 2] == ')') letters.Add(a[k + 1]);
        return letters.Distinct().ToList();
    }

    /// <summary>An option at <paramref name="i"/>: <c>(x)</c>, or (where <paramref name="bare"/>) a lone
    /// letter followed by the end, a space or punctuation, with its closing <c>)</c>, <c>.</c> or <c>:</c>.</summary>
    static bool TryOption(string a, ref int i, bool bare, out char letter)
    {
        letter = '\0';
        if (i + 2 < a.Length && a[i] == '(' && char.IsAsciiLetterLower(a[i + 1]) && a[i + 2] == ')')
        {
            letter = a[i + 1];
            i += 3;
            return true;
        }
        if (!bare || i >= a.Length || !char.IsAsciiLetterLower(a[i])) return false;
        if (i + 1 < a.Length && (char.IsLetterOrDigit(a[i + 1]) || a[i + 1] is '\'' or '-'))
            return false;
        letter = a[i];
        i++;
        if (i < a.Length && a[i] is ')' or '.' or ':') i++;
        return true;
    }

    /// <summary>Moves past <paramref name="word"/> and the spaces after it, where it stands as a word at <paramref name="i"/>.</summary>
    static void SkipWord(string a, ref int i, string word)
    {
        int end = i + word.Length;
        if (!a.AsSpan(i).StartsWith(word, StringComparison.Ordinal) || end >= a.Length || a[end] != ' ') return;
        i = end;
        while (i < a.Length && a[i] == ' ') i++;
    }

    /// <summary>Lower case, single spaces, no closing period, no Markdown emphasis, no <c>$…$</c> or
    /// <c>\text{…}</c> wrapper, <c>\{</c> as <c>{</c>, '−' as '-'.</summary>
    public static string Normalize(string s) => Normalize(s, lower: true);

    static string Normalize(string s, bool lower)
    {
        s = WithoutEmphasis(s.Trim()).Trim();
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
            sb.Append(lower ? char.ToLowerInvariant(c) : c);
        }
        while (sb.Length > 0 && sb[^1] == '.') sb.Length--;
        return sb.ToString().TrimEnd();
    }

    /// <summary><paramref name="s"/> without Markdown emphasis: a run of <c>*</c> or <c>_</c> is dropped
    /// unless it joins two letters or digits (<c>snake_case</c>, <c>2*3</c>) or stands between two
    /// spaces (<c>2 * 3</c>); so <c>**(B)**</c>, <c>*True*.</c>, <c>__valid__</c> and <c>**Answer:** (B)</c> lose it.</summary>
    public static string WithoutEmphasis(string s)
    {
        if (s.IndexOfAny(['*', '_']) < 0) return s;
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length;)
        {
            char c = s[i];
            if (c is not ('*' or '_')) { sb.Append(c); i++; continue; }
            int end = i;
            while (end < s.Length && s[end] == c) end++;
            char? before = i > 0 ? s[i - 1] : null, after = end < s.Length ? s[end] : null;
            bool inWord = before is { } b1 && char.IsLetterOrDigit(b1) && after is { } a1 && char.IsLetterOrDigit(a1);
            bool spaced = before is { } b2 && char.IsWhiteSpace(b2) && after is { } a2 && char.IsWhiteSpace(a2);
            if (inWord || spaced) sb.Append(s, i, end - i);
            i = end;
        }
        return sb.ToString();
    }
}
