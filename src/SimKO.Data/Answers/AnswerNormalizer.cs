using System.Text;
using System.Text.RegularExpressions;

namespace SimKO.Data.Answers;

/// <summary>An answer after normalisation.</summary>
/// <param name="Text">Normalised LaTeX with single spaces (spaces still separate words and commands).</param>
/// <param name="Key">Text without any whitespace, for exact comparison.</param>
/// <param name="Percent">Whether a percent sign was removed.</param>
public readonly record struct NormalizedAnswer(string Text, string Key, bool Percent);

/// <summary>
/// Removes what does not change a math answer's meaning: math delimiters (<c>$</c>, <c>\( \)</c>), wrappers
/// (<c>\boxed</c>, <c>\textbf</c>), sizing (<c>\left \right</c>), spacing (<c>\! \, \;</c>), degrees (<c>^\circ</c>),
/// percent and dollar signs, units (<c>\text{ cm}</c>, <c>\mbox{ inches}^2</c>, trailing unit words, the
/// problem's own unit), <c>x \in</c>, a closing period, thousands separators (<c>10,\!080</c>), and turns
/// mixed numbers (<c>1\frac{4}{5}</c>) and <c>\dfrac/\tfrac</c> into <c>\frac</c>. Pure and allocation-light.
/// </summary>
public static partial class AnswerNormalizer
{
    /// <summary>Answers longer than this are only trimmed (no LaTeX work): they are compared as strings.</summary>
    public const int MaxLength = 4000;

    static readonly string[] SizingCommands =
        ["\\left", "\\right", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\biggl", "\\biggr", "\\Biggl", "\\Biggr", "\\bigg", "\\Bigg", "\\big", "\\Big"];
    static readonly string[] UnwrapCommands =
        ["\\boxed", "\\fbox", "\\textbf", "\\mathbf", "\\textit", "\\mathit", "\\emph", "\\bm", "\\boldsymbol", "\\mathnormal"];
    static readonly string[] TextCommands =
        ["\\text", "\\textrm", "\\textup", "\\textnormal", "\\textsf", "\\texttt", "\\mbox", "\\mathrm", "\\mathsf", "\\mathtt"];

    /// <summary>Normalises <paramref name="raw"/>; <paramref name="unit"/> (e.g. OlympiadBench's <c>km/h</c>) is
    /// removed from the end when present.</summary>
    public static NormalizedAnswer Normalize(string raw, string? unit = null)
    {
        string s = raw.Trim();
        if (s.Length == 0) return new("", "", false);
        if (s.Length > MaxLength) return new(s, RemoveWhitespace(s), false);
        if (HasNonAscii(s)) s = MapUnicode(s);

        s = s.Replace("\\$", "", StringComparison.Ordinal);
        if (s.Contains('$')) s = s.Replace("$", "", StringComparison.Ordinal);
        if (s.Contains("\\(", StringComparison.Ordinal) || s.Contains("\\[", StringComparison.Ordinal))
            s = s.Replace("\\(", "", StringComparison.Ordinal).Replace("\\)", "", StringComparison.Ordinal)
                 .Replace("\\[", "", StringComparison.Ordinal).Replace("\\]", "", StringComparison.Ordinal);

        if (s.Contains('\\'))
        {
            foreach (var c in UnwrapCommands) s = Unwrap(s, c);
            s = s.Replace("\\left.", "", StringComparison.Ordinal).Replace("\\right.", "", StringComparison.Ordinal);
            foreach (var c in SizingCommands) s = RemoveCommand(s, c);
            // Matrix row breaks (\\) must survive the removal of the spacing command "\ ".
            bool rows = s.Contains("\\\\", StringComparison.Ordinal);
            if (rows) s = s.Replace("\\\\", "\u0001", StringComparison.Ordinal);
            s = s.Replace("\\!", "", StringComparison.Ordinal).Replace("\\,", " ", StringComparison.Ordinal)
                 .Replace("\\;", " ", StringComparison.Ordinal).Replace("\\:", " ", StringComparison.Ordinal)
                 .Replace("\\ ", " ", StringComparison.Ordinal);
            if (rows) s = s.Replace("\u0001", "\\\\", StringComparison.Ordinal);
            s = RemoveCommand(s, "\\quad", " "); s = RemoveCommand(s, "\\qquad", " ");
            s = RemoveCommand(s, "\\displaystyle"); s = RemoveCommand(s, "\\limits");
            s = s.Replace("\\dfrac", "\\frac", StringComparison.Ordinal).Replace("\\tfrac", "\\frac", StringComparison.Ordinal)
                 .Replace("\\cfrac", "\\frac", StringComparison.Ordinal)
                 .Replace("\\dbinom", "\\binom", StringComparison.Ordinal).Replace("\\tbinom", "\\binom", StringComparison.Ordinal);
            if (s.Contains("circ", StringComparison.Ordinal) || s.Contains("degree", StringComparison.Ordinal)) s = Degrees().Replace(s, "");
        }
        s = s.Replace('~', ' ');
        bool percent = false;
        if (s.Contains('%'))
        {
            percent = true;
            s = s.Replace("\\%", "", StringComparison.Ordinal).Replace("%", "", StringComparison.Ordinal);
        }
        if (s.Contains("\\text", StringComparison.Ordinal) || s.Contains("\\m", StringComparison.Ordinal)) s = HandleTextBlocks(s);
        if (!string.IsNullOrWhiteSpace(unit)) s = StripUnit(s, unit);
        s = TrailingUnit().Replace(s, "");
        s = InPrefix().Replace(s, "");
        s = CollapseSpaces(s);
        while (s.Length > 0 && (s[^1] == '.' || s[^1] == ',' || s[^1] == ';')) s = s[..^1].TrimEnd();
        if (s.Length > 0 && s[0] == '.' && !(s.Length > 1 && char.IsAsciiDigit(s[1]))) s = s[1..].TrimStart();

        var mixed = MixedNumber().Match(s);
        if (mixed.Success && long.TryParse(mixed.Groups[2].ValueSpan, out var whole) && long.TryParse(mixed.Groups[3].ValueSpan, out var num)
            && long.TryParse(mixed.Groups[4].ValueSpan, out var den) && den > 0 && num < den && whole < 1_000_000_000)
            s = $"{mixed.Groups[1].Value}\\frac{{{whole * den + num}}}{{{den}}}";

        string key = RemoveWhitespace(s);
        if (key.Contains(',') && ThousandsNumber().IsMatch(key))
        {
            key = key.Replace(",", "", StringComparison.Ordinal);
            s = key;
        }
        if (key.Contains('_') || key.Contains('^')) key = SingleCharGroup().Replace(key, "$1$2");
        return new(s, key, percent);
    }

    /// <summary>A key for comparing text answers: no whitespace, no braces, lower case.</summary>
    public static string TextKey(string key)
    {
        var sb = new StringBuilder(key.Length);
        foreach (char c in key) if (c != '{' && c != '}' && !char.IsWhiteSpace(c)) sb.Append(char.ToLowerInvariant(c));
        return sb.ToString();
    }

    static bool HasNonAscii(string s)
    {
        foreach (char c in s) if (c > 127) return true;
        return false;
    }

    static string MapUnicode(string s)
    {
        var sb = new StringBuilder(s.Length + 8);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\u2212' or '\u2013' or '\u2014': sb.Append('-'); break;
                case '\u00d7': sb.Append("\\times "); break;
                case '\u00f7': sb.Append("\\div "); break;
                case '\u00b7' or '\u22c5': sb.Append("\\cdot "); break;
                case '\u03c0': sb.Append("\\pi "); break;
                case '\u221e': sb.Append("\\infty "); break;
                case '\u221a': sb.Append("\\sqrt"); break;
                case '\u00b0': sb.Append("^\\circ"); break;
                case '\u2264': sb.Append("\\le "); break;
                case '\u2265': sb.Append("\\ge "); break;
                case '\u00b1': sb.Append("\\pm "); break;
                case '\u222a': sb.Append("\\cup "); break;
                case '\u00b2': sb.Append("^2"); break;
                case '\u00b3': sb.Append("^3"); break;
                case '\uff0c': sb.Append(','); break;
                case '\u00a0' or '\u2009' or '\u202f' or '\u2002' or '\u2003': sb.Append(' '); break;
                default: sb.Append(c); break;
            }
        }
        return sb.ToString();
    }

    static string RemoveWhitespace(string s)
    {
        int n = 0;
        foreach (char c in s) if (char.IsWhiteSpace(c)) n++;
        if (n == 0) return s;
        return string.Create(s.Length - n, s, static (span, src) =>
        {
            int k = 0;
            foreach (char c in src) if (!char.IsWhiteSpace(c)) span[k++] = c;
        });
    }

    static string CollapseSpaces(string s)
    {
        bool needs = false;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if ((c != ' ' && char.IsWhiteSpace(c)) || (c == ' ' && (i == 0 || i == s.Length - 1 || s[i + 1] == ' '))) { needs = true; break; }
        }
        if (!needs) return s;
        var sb = new StringBuilder(s.Length);
        bool space = false;
        foreach (char c in s)
        {
            if (char.IsWhiteSpace(c)) { space = sb.Length > 0; continue; }
            if (space) { sb.Append(' '); space = false; }
            sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>Removes a command (not followed by a letter) and puts <paramref name="replacement"/> in its place.</summary>
    static string RemoveCommand(string s, string command, string replacement = "")
    {
        int i = s.IndexOf(command, StringComparison.Ordinal);
        if (i < 0) return s;
        var sb = new StringBuilder(s.Length);
        int last = 0;
        while (i >= 0)
        {
            int after = i + command.Length;
            if (after < s.Length && char.IsAsciiLetter(s[after])) { i = s.IndexOf(command, after, StringComparison.Ordinal); continue; }
            sb.Append(s, last, i - last).Append(replacement);
            last = after;
            i = s.IndexOf(command, after, StringComparison.Ordinal);
        }
        sb.Append(s, last, s.Length - last);
        return sb.ToString();
    }

    /// <summary>Index of the brace closing the one at <paramref name="open"/>, or -1.</summary>
    internal static int MatchingBrace(string s, int open)
    {
        int d = 0;
        for (int k = open; k < s.Length; k++)
        {
            char c = s[k];
            if (c == '\\' && k + 1 < s.Length && (s[k + 1] == '{' || s[k + 1] == '}')) { k++; continue; }
            if (c == '{') d++;
            else if (c == '}' && --d == 0) return k;
        }
        return -1;
    }

    /// <summary>Replaces every <c>\cmd{X}</c> by <c>X</c>.</summary>
    static string Unwrap(string s, string command)
    {
        int i = s.IndexOf(command, StringComparison.Ordinal);
        while (i >= 0)
        {
            int j = i + command.Length;
            if (j < s.Length && char.IsAsciiLetter(s[j])) { i = s.IndexOf(command, j, StringComparison.Ordinal); continue; }
            while (j < s.Length && s[j] == ' ') j++;
            if (j < s.Length && s[j] == '{')
            {
                int close = MatchingBrace(s, j);
                if (close < 0) return s;
                s = string.Concat(s.AsSpan(0, i), s.AsSpan(j + 1, close - j - 1), s.AsSpan(close + 1));
            }
            else s = string.Concat(s.AsSpan(0, i), s.AsSpan(i + command.Length));
            i = s.IndexOf(command, i, StringComparison.Ordinal);
        }
        return s;
    }

    readonly record struct TextBlock(int Start, int End, string Content, bool TopLevel);

    /// <summary>
    /// <c>\text{…}</c>-like blocks: when what remains without the top-level ones still holds a number, they are
    /// units or words around it (<c>5.4 \text{ cents}</c>, <c>\frac{270}7\text{ degrees}</c>) and are removed with
    /// a following <c>^2</c>; otherwise the answer is text (<c>\text{Evelyn}</c>, <c>\text{(C)}</c>) and they are unwrapped.
    /// "and"/"or" blocks become commas.
    /// </summary>
    static string HandleTextBlocks(string s)
    {
        List<TextBlock>? blocks = null;
        int depth = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '{') { depth++; continue; }
            if (c == '}') { depth--; continue; }
            if (c != '\\') continue;
            foreach (var cmd in TextCommands)
            {
                if (string.CompareOrdinal(s, i, cmd, 0, cmd.Length) != 0) continue;
                int j = i + cmd.Length;
                if (j < s.Length && char.IsAsciiLetter(s[j])) continue;
                while (j < s.Length && s[j] == ' ') j++;
                if (j >= s.Length || s[j] != '{') continue;
                int close = MatchingBrace(s, j);
                if (close < 0) return s;
                int end = close + 1;
                var exp = UnitPower().Match(s, end);
                if (exp.Success && exp.Index == end) end += exp.Length;
                (blocks ??= []).Add(new TextBlock(i, end, s.Substring(j + 1, close - j - 1), depth == 0));
                i = close;
                break;
            }
        }
        if (blocks is null) return s;
        var remainder = new StringBuilder(s.Length);
        int last = 0;
        foreach (var b in blocks)
        {
            remainder.Append(s, last, b.Start - last);
            var content = b.Content.Trim();
            if (content is "and" or "or" or ",") remainder.Append(',');
            else if (!b.TopLevel) remainder.Append(content);
            last = b.End;
        }
        remainder.Append(s, last, s.Length - last);
        var rest = remainder.ToString();
        if (rest.AsSpan().IndexOfAnyInRange('0', '9') >= 0 && rest.Trim().Length > 0) return rest;
        // Text answer: unwrap every block.
        var unwrapped = new StringBuilder(s.Length);
        last = 0;
        foreach (var b in blocks)
        {
            unwrapped.Append(s, last, b.Start - last);
            var content = b.Content.Trim();
            unwrapped.Append(content is "and" or "or" ? "," : content);
            if (b.End > b.Start) unwrapped.Append(' ');
            last = b.End;
        }
        unwrapped.Append(s, last, s.Length - last);
        return unwrapped.ToString();
    }

    static string StripUnit(string s, string unit)
    {
        var u = RemoveWhitespace(unit.Replace("$", "", StringComparison.Ordinal).Replace("\\mathrm", "", StringComparison.Ordinal)
            .Replace("\\text", "", StringComparison.Ordinal).Replace("{", "", StringComparison.Ordinal).Replace("}", "", StringComparison.Ordinal)
            .Replace("~", "", StringComparison.Ordinal));
        if (u.Length == 0) return s;
        if (u is "^\\circ" or "\\circ" or "%" or "\\%") return s; // already removed
        // Walk back over s, matching u's characters and skipping spaces and braces.
        int k = s.Length - 1, m = u.Length - 1;
        while (k >= 0 && m >= 0)
        {
            char c = s[k];
            if (c == ' ' || c == '{' || c == '}') { k--; continue; }
            if (c != u[m]) return s;
            k--; m--;
        }
        if (m >= 0) return s;
        var rest = s[..(k + 1)];
        return rest.AsSpan().IndexOfAnyInRange('0', '9') >= 0 ? rest.TrimEnd() : s;
    }

    [GeneratedRegex(@"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|\^\s*\{\s*\}")]
    private static partial Regex Degrees();

    [GeneratedRegex(@"\G\s*(\^\s*\{?\s*[23]\s*\}?)")]
    private static partial Regex UnitPower();

    [GeneratedRegex(@"(?<=[\d\}\)])\s*(?:square\s+|sq\.?\s*|cubic\s+)?(?:units?|cm|mm|km|kg|mg|ml|meters?|metres?|miles?|mph|feet|foot|ft|inch(?:es)?|yards?|seconds?|sec|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|dollars?|cents?|degrees?|radians?|liters?|litres?|gallons?|pounds?|lbs?|ounces?|oz|grams?|km/h|m/s|cm/s|people|students|ways|times|points|percent)(?:\s*\^\s*\{?\s*[23]\s*\}?)?\.?\s*$", RegexOptions.IgnoreCase)]
    private static partial Regex TrailingUnit();

    [GeneratedRegex(@"^\s*[a-zA-Z]\s*\\in\s+|^\s*[a-zA-Z]\s*\\in(?=[\[\(\\\{])")]
    private static partial Regex InPrefix();

    [GeneratedRegex(@"^(-?)(\d+)\s*\\frac\s*\{(\d+)\}\s*\{(\d+)\}$")]
    private static partial Regex MixedNumber();

    [GeneratedRegex(@"^-?\d{1,3}(,\d{3})+(\.\d+)?$")]
    private static partial Regex ThousandsNumber();

    [GeneratedRegex(@"([_\^])\{(\w)\}")]
    private static partial Regex SingleCharGroup();
}
