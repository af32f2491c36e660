using System.Text;

namespace SimKO.Data.Answers;

/// <summary>
/// BIG-Bench Hard scoring: exact match after normalising case, spaces, a closing period, math delimiters and
/// the parentheses of a multiple-choice letter (<c>(B)</c>, <c>B</c>, <c>B)</c>, <c>(B) Frankenstein</c> all give
/// <c>(b)</c> when the target is a letter option). Numbers compare as numbers (<c>24.0</c> = <c>24</c>); targets made
/// only of brackets (Dyck) ignore spaces. The model's answer is the last <c>\boxed{}</c>, else the last
/// "the answer is …", else a short one-line completion.
/// </summary>
public sealed class BbhVerifier : IVerifier
{
    /// <summary>The shared instance (the verifier has no settings).</summary>
    public static readonly BbhVerifier Default = new();

    /// <inheritdoc/>
    public GradeResult Grade(Problem problem, string completion)
    {
        var (answer, method) = AnswerExtractor.Extract(completion);
        if (answer is null) return new GradeResult(null, false, ExtractionMethod.None);
        return new GradeResult(answer, Matches(answer, problem.Answer), method);
    }

    /// <inheritdoc/>
    public double Score(Problem problem, string completion) => Grade(problem, completion).Score;

    /// <summary>Whether an extracted answer matches a BBH target.</summary>
    public static bool Matches(string answer, string target)
    {
        var t = Normalize(target);
        var a = Normalize(answer);
        if (t.Length == 0) return false;
        if (IsOptionLetter(t))
        {
            // "(b)", "b", "b)", "(b) frankenstein", "option (b)".
            if (a.StartsWith("option ", StringComparison.Ordinal)) a = a[7..].TrimStart();
            if (a.Length >= 1 && a[0] == '(' && a.Length >= 3 && a[2] == ')') return a[1] == t[1];
            if (a.Length == 1 || (a.Length >= 2 && (a[1] == ')' || a[1] == ' ' || a[1] == '.' || a[1] == ':'))) return a[0] == t[1];
            return false;
        }
        if (a == t) return true;
        if (double.TryParse(a, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var x)
            && double.TryParse(t, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var y))
            return x == y;
        if (t.All(c => !char.IsLetterOrDigit(c)))
            return string.Concat(a.Where(c => !char.IsWhiteSpace(c))) == string.Concat(t.Where(c => !char.IsWhiteSpace(c)));
        return false;
    }

    static bool IsOptionLetter(string t) => t.Length == 3 && t[0] == '(' && t[2] == ')' && char.IsAsciiLetterLower(t[1]);

    /// <summary>Lower case, single spaces, no closing period, no <c>$</c>/<c>\text{}</c> wrapper, minus sign as '-'.</summary>
    public static string Normalize(string s)
    {
        s = AnswerExtractor.StripMathDelimiters(s.Trim());
        if (s.StartsWith("\\text{", StringComparison.Ordinal) && s.EndsWith('}')) s = s[6..^1];
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
