namespace SimKO.Data.Math;

/// <summary>
/// Finds the final answer in a model's completion: the last <c>\boxed{…}</c> or <c>\fbox{…}</c>
/// (braces balanced), else GSM8K's <c>#### n</c> line, else the text after the last
/// "the answer is". Never throws; returns null when none of these is present.
/// </summary>
public static class AnswerExtraction
{
    /// <summary>The answer by the first rule that applies (boxed, ####, "the answer is"), or null.</summary>
    public static string? Extract(string? text)
    {
        if (string.IsNullOrEmpty(text)) return null;
        return LastBoxed(text) ?? HashMarked(text) ?? TheAnswerIs(text);
    }

    /// <summary>Contents of the last <c>\boxed{…}</c> / <c>\fbox{…}</c> (also <c>\boxed 5</c>), or null.</summary>
    public static string? LastBoxed(string text)
    {
        int searchEnd = text.Length;
        while (searchEnd > 0)
        {
            int boxed = text.LastIndexOf("\\boxed", searchEnd - 1, StringComparison.Ordinal);
            int fbox = text.LastIndexOf("\\fbox", searchEnd - 1, StringComparison.Ordinal);
            int at = System.Math.Max(boxed, fbox);
            if (at < 0) return null;
            int i = at + (at == boxed ? 6 : 5);
            var content = ReadArgument(text, i);
            if (content is not null) return content.Trim();
            searchEnd = at; // unbalanced or empty: try an earlier one
        }
        return null;
    }

    /// <summary>The braced argument starting at <paramref name="i"/> (after optional spaces), or
    /// for <c>\boxed 5</c> the token up to the next space or <c>$</c>. Null when unbalanced.</summary>
    static string? ReadArgument(string text, int i)
    {
        int n = text.Length;
        int j = i;
        while (j < n && text[j] is ' ' or '\t') j++;
        if (j >= n) return null;
        if (text[j] == '{')
        {
            int depth = 0;
            for (int k = j; k < n; k++)
            {
                char c = text[k];
                if (c == '\\' && k + 1 < n) { k++; continue; } // \{ and \} do not count
                if (c == '{') depth++;
                else if (c == '}' && --depth == 0) return text.Substring(j + 1, k - j - 1);
            }
            return null;
        }
        if (j == i || char.IsLetter(text[j])) return null; // \boxedfoo is another command
        int end = j;
        while (end < n && text[end] is not (' ' or '$' or '\n' or '\r')) end++;
        return end > j ? text[j..end] : null;
    }

    /// <summary>The rest of the last line that starts with <c>####</c> (GSM8K), or null.</summary>
    public static string? HashMarked(string text)
    {
        int at = text.LastIndexOf("####", StringComparison.Ordinal);
        if (at < 0) return null;
        int end = text.IndexOf('\n', at);
        var rest = (end < 0 ? text[(at + 4)..] : text[(at + 4)..end]).Trim();
        return rest.Length == 0 ? null : rest;
    }

    static readonly string[] Phrases = ["the final answer is", "the answer is", "final answer:", "answer:"];

    /// <summary>What follows the last "the answer is" (or "final answer:"), up to the end of its
    /// line, without a trailing period or <c>$</c> delimiters; null when absent.</summary>
    public static string? TheAnswerIs(string text)
    {
        foreach (var phrase in Phrases)
        {
            int at = text.LastIndexOf(phrase, StringComparison.OrdinalIgnoreCase);
            if (at < 0) continue;
            int start = at + phrase.Length;
            int end = text.IndexOf('\n', start);
            var rest = (end < 0 ? text[start..] : text[start..end]).Trim();
            if (rest.StartsWith(':')) rest = rest[1..].TrimStart();
            rest = rest.TrimEnd('.', ' ', '\t');
            if (rest.Length >= 2 && rest[0] == '$' && rest[^1] == '$') rest = rest.Trim('$').Trim();
            else if (rest.EndsWith("$.")) rest = rest[..^2];
            if (rest.Length > 0) return rest;
        }
        return null;
    }
}
