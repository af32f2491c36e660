namespace SimKO.Data.Answers;

/// <summary>
/// Finds the final answer in a model completion or a published solution. Never throws; returns null when
/// there is no answer. All methods are linear in the text length.
/// </summary>
public static class AnswerExtractor
{
    /// <summary>A completion with no marker counts as a bare answer when it is one line of at most this many characters.</summary>
    public const int MaxBareAnswerLength = 100;

    /// <summary>
    /// The answer of a completion, trying in order: the last <c>\boxed{…}</c>/<c>\fbox{…}</c>, GSM8K's
    /// <c>#### n</c>, a final "the answer is …", and (unless <paramref name="requireMarker"/>) the whole text when
    /// it is a short single line.
    /// </summary>
    public static (string? Answer, ExtractionMethod Method) Extract(string? text, bool requireMarker = false)
    {
        if (string.IsNullOrEmpty(text)) return (null, ExtractionMethod.None);
        if (HasBoxCommand(text))
        {
            // A box that is there but unbalanced (a truncated completion) gives no answer rather than an earlier one.
            var boxed = LastBoxed(text);
            return boxed is null ? (null, ExtractionMethod.None) : (boxed, ExtractionMethod.Boxed);
        }
        var hashes = AfterHashes(text);
        if (hashes is not null) return (hashes, ExtractionMethod.Hashes);
        var answerIs = AnswerIs(text);
        if (answerIs is not null) return (answerIs, ExtractionMethod.AnswerIs);
        if (!requireMarker)
        {
            var t = text.Trim();
            if (t.Length > 0 && t.Length <= MaxBareAnswerLength && t.IndexOf('\n') < 0) return (t, ExtractionMethod.Whole);
        }
        return (null, ExtractionMethod.None);
    }

    static bool HasBoxCommand(string text) =>
        text.Contains("\\boxed", StringComparison.Ordinal) || text.Contains("\\fbox", StringComparison.Ordinal);

    /// <summary>The content of the last <c>\boxed{…}</c> or <c>\fbox{…}</c> (braces balanced, <c>\{ \}</c> not
    /// counted), or of <c>\boxed x</c> (up to a space or <c>$</c>). Null when there is none or the last one is unbalanced.</summary>
    public static string? LastBoxed(string text)
    {
        int a = text.LastIndexOf("\\boxed", StringComparison.Ordinal);
        int b = text.LastIndexOf("\\fbox", StringComparison.Ordinal);
        int start = Math.Max(a, b);
        if (start < 0) return null;
        return BoxContentAt(text, start, start == a ? 6 : 5, out _);
    }

    /// <summary>The contents of every balanced <c>\boxed{…}</c> / <c>\fbox{…}</c>, in order.</summary>
    public static IReadOnlyList<string> AllBoxed(string text)
    {
        var found = new List<string>();
        int i = 0;
        while (i < text.Length)
        {
            int a = text.IndexOf("\\boxed", i, StringComparison.Ordinal);
            int b = text.IndexOf("\\fbox", i, StringComparison.Ordinal);
            int start = a < 0 ? b : b < 0 ? a : Math.Min(a, b);
            if (start < 0) break;
            var content = BoxContentAt(text, start, start == a ? 6 : 5, out int end);
            if (content is not null) found.Add(content);
            i = Math.Max(end, start + 1);
        }
        return found;
    }

    static string? BoxContentAt(string text, int start, int commandLength, out int end)
    {
        int i = start + commandLength;
        end = i;
        if (i < text.Length && char.IsLetter(text[i])) return null; // e.g. \boxedfoo is another command
        int j = i;
        while (j < text.Length && (text[j] == ' ' || text[j] == '\t')) j++;
        if (j >= text.Length) return null;
        if (text[j] != '{')
        {
            if (j == i) return null; // "\boxed5" is not LaTeX
            int k = j;
            while (k < text.Length && !char.IsWhiteSpace(text[k]) && text[k] != '$') k++;
            end = k;
            return k > j ? text[j..k] : null;
        }
        int depth = 0;
        for (int k = j; k < text.Length; k++)
        {
            char c = text[k];
            if (c == '\\' && k + 1 < text.Length && (text[k + 1] == '{' || text[k + 1] == '}')) { k++; continue; }
            if (c == '{') depth++;
            else if (c == '}' && --depth == 0)
            {
                end = k + 1;
                return text.Substring(j + 1, k - j - 1).Trim();
            }
        }
        return null;
    }

    /// <summary>GSM8K's final answer: the rest of the line after the last <c>####</c>, trimmed; null if absent or empty.</summary>
    public static string? AfterHashes(string text)
    {
        int i = text.LastIndexOf("####", StringComparison.Ordinal);
        if (i < 0) return null;
        int s = i + 4;
        int e = text.IndexOf('\n', s);
        var answer = (e < 0 ? text[s..] : text[s..e]).Trim();
        return answer.Length == 0 ? null : answer;
    }

    static readonly string[] AnswerIsMarkers = ["the answer is", "final answer is", "final answer:", "answer:"];

    /// <summary>The text after the last "the answer is" / "final answer:" / "answer:" (case-insensitive) up to the
    /// end of its line, without a closing period, markdown bold or math delimiters; null if absent.</summary>
    public static string? AnswerIs(string text)
    {
        int best = -1, bestLen = 0;
        foreach (var m in AnswerIsMarkers)
        {
            int i = text.LastIndexOf(m, StringComparison.OrdinalIgnoreCase);
            if (i > best) { best = i; bestLen = m.Length; }
        }
        if (best < 0) return null;
        int s = best + bestLen;
        int e = text.IndexOf('\n', s);
        var answer = (e < 0 ? text[s..] : text[s..e]).Trim();
        answer = answer.Trim('*', ' ', ':');
        if (answer.EndsWith('.')) answer = answer[..^1].TrimEnd(); // the sentence's period, never a decimal point
        answer = StripMathDelimiters(answer);
        return answer.Length == 0 ? null : answer;
    }

    internal static string StripMathDelimiters(string s)
    {
        s = s.Trim();
        if (s.Length >= 2 && s[0] == '$' && s[^1] == '$') s = s.Trim('$').Trim();
        else if (s.StartsWith("\\(", StringComparison.Ordinal) && s.EndsWith("\\)", StringComparison.Ordinal)) s = s[2..^2].Trim();
        else if (s.StartsWith("\\[", StringComparison.Ordinal) && s.EndsWith("\\]", StringComparison.Ordinal)) s = s[2..^2].Trim();
        return s;
    }
}
