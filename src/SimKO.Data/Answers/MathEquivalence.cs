using System.Numerics;

namespace SimKO.Data.Answers;

/// <summary>Settings of <see cref="MathEquivalence"/>.</summary>
/// <param name="RelativeTolerance">Two numbers are equal when |a − b| ≤ tol · max(|a|, |b|). Default 1e-4.</param>
/// <param name="Points">Evaluation points used when an expression has variables. Default 3.</param>
public sealed record EquivalenceSettings(double RelativeTolerance = 1e-4, int Points = 3)
{
    /// <summary>The documented defaults.</summary>
    public static readonly EquivalenceSettings Default = new();
}

/// <summary>
/// Decides whether a predicted answer is mathematically equivalent to a reference answer: numbers (with
/// relative tolerance), fractions, radicals, π, expressions (evaluated at the same pseudo-random points),
/// equations (<c>x = 5</c> against <c>5</c>; two equations when one side minus the other agree up to a factor),
/// intervals and tuples element-wise (bracket kinds must match), sets, bare lists and <c>±</c> without order,
/// matrices, percentages (<c>50\%</c> = <c>0.5</c>), and text answers by normalised string (case-insensitive).
/// Anything it cannot parse falls back to comparing normalised strings; it never throws.
/// </summary>
public static class MathEquivalence
{
    /// <summary>True when <paramref name="prediction"/> and <paramref name="reference"/> denote the same answer.</summary>
    /// <param name="unit">A unit either side may carry (e.g. OlympiadBench's <c>km/h</c>); removed before comparing.</param>
    public static bool AreEquivalent(string prediction, string reference, string? unit = null, EquivalenceSettings? settings = null)
    {
        if (prediction is null || reference is null) return false;
        if (string.Equals(prediction, reference, StringComparison.Ordinal)) return true;
        settings ??= EquivalenceSettings.Default;
        NormalizedAnswer p = default, r = default;
        try
        {
            p = AnswerNormalizer.Normalize(prediction, unit);
            r = AnswerNormalizer.Normalize(reference, unit);
            if (p.Key.Length == 0 || r.Key.Length == 0) return p.Key.Length == r.Key.Length && p.Key.Length > 0;
            if (string.Equals(p.Key, r.Key, StringComparison.Ordinal)) return true;
            if (p.Text.Length > AnswerNormalizer.MaxLength || r.Text.Length > AnswerNormalizer.MaxLength) return false;
            var a = StructuredAnswer.Parse(p.Text);
            var b = StructuredAnswer.Parse(r.Text);
            var cmp = new Comparer(settings);
            if (cmp.Equal(a, b)) return true;
            if (p.Percent != r.Percent && a is Scalar sa && b is Scalar sb && !sa.E.HasVars && !sb.E.HasVars)
            {
                // 50\% against 0.5 (and the reverse).
                var va = sa.E.Eval(0); var vb = sb.E.Eval(0);
                return p.Percent ? cmp.Close(va / 100, vb, false) : cmp.Close(va, vb / 100, false);
            }
            return false;
        }
        catch (Exception)
        {
            // Never reached by any input we know of; a last guard so that a grader bug cannot stop a training run.
            return p.Key is not null && r.Key is not null && p.Key.Length > 0
                && string.Equals(p.Key, r.Key, StringComparison.OrdinalIgnoreCase);
        }
    }

    /// <summary>The shape an answer parses to (number, expression, tuple, set, equation, text …), for diagnostics and tests.</summary>
    internal static string Shape(string answer, string? unit = null)
    {
        var n = AnswerNormalizer.Normalize(answer, unit);
        return Describe(StructuredAnswer.Parse(n.Text));
    }

    static string Describe(Answer a) => a switch
    {
        Scalar s => s.E.HasVars ? "expression" : "number",
        Seq q => q.Open == 'M' ? "matrix" : $"{q.Open}{string.Join(",", q.Items.Select(Describe))}{q.Close}",
        Bag b => (b.Bare ? "list{" : "set{") + string.Join(",", b.Items.Select(Describe)) + "}",
        Equation => "equation",
        Text t => t.Key.Length == 0 ? "empty" : "text",
        _ => "?",
    };

    sealed class Comparer(EquivalenceSettings settings)
    {
        public bool Equal(Answer a, Answer b)
        {
            switch (a, b)
            {
                case (Scalar x, Scalar y): return ScalarEqual(x.E, y.E);
                case (Bag x, Bag y): return x.Items.Length == y.Items.Length && Unordered(x.Items, y.Items);
                case (Bag { Items.Length: 1 } x, _): return Equal(x.Items[0], b);
                case (_, Bag { Items.Length: 1 } y): return Equal(a, y.Items[0]);
                case (Seq x, Seq y):
                    return x.Open == y.Open && x.Close == y.Close && Ordered(x.Items, y.Items);
                // A bare list "1,2" for a point "(1,2)", in the order written.
                case (Bag { Bare: true } x, Seq { Open: '(', Close: ')' } y): return Ordered(x.Items, y.Items);
                case (Seq { Open: '(', Close: ')' } x, Bag { Bare: true } y): return Ordered(x.Items, y.Items);
                case (Equation x, Equation y): return EquationsEqual(x, y);
                case (Text x, Text y): return string.Equals(x.Key, y.Key, StringComparison.Ordinal);
                default: return false;
            }
        }

        bool Ordered(Answer[] x, Answer[] y)
        {
            if (x.Length != y.Length) return false;
            for (int i = 0; i < x.Length; i++) if (!Equal(x[i], y[i])) return false;
            return true;
        }

        bool Unordered(Answer[] x, Answer[] y)
        {
            if (x.Length != y.Length) return false;
            Span<bool> used = x.Length <= 64 ? stackalloc bool[x.Length] : new bool[x.Length];
            return Match(x, y, 0, used);
        }

        // Backtracking matching; answer lists are short, and equivalence is nearly transitive so this rarely backtracks.
        bool Match(Answer[] x, Answer[] y, int i, Span<bool> used)
        {
            if (i == x.Length) return true;
            for (int j = 0; j < y.Length; j++)
            {
                if (used[j] || !Equal(x[i], y[j])) continue;
                used[j] = true;
                if (Match(x, y, i + 1, used)) return true;
                used[j] = false;
            }
            return false;
        }

        bool ScalarEqual(Expr a, Expr b)
        {
            bool exact = a.IsLiteral && b.IsLiteral;
            if (exact)
            {
                // Two whole numbers written as numbers are equal only when identical (109200000 is not 109200001).
                var (va, vb) = (a.Eval(0), b.Eval(0));
                if (IsWhole(va) && IsWhole(vb)) return va == vb;
            }
            int points = a.HasVars || b.HasVars ? Math.Max(1, settings.Points) : 1;
            for (int p = 0; p < points; p++)
                if (!Close(a.Eval(p), b.Eval(p), !exact)) return false;
            return true;
        }

        static bool IsWhole(Complex z) => z.Imaginary == 0 && Math.Abs(z.Real) < 9e15 && z.Real == Math.Round(z.Real);

        public bool Close(Complex a, Complex b, bool absoluteFloor)
        {
            if (double.IsNaN(a.Real) || double.IsNaN(a.Imaginary) || double.IsNaN(b.Real) || double.IsNaN(b.Imaginary)) return false;
            bool ia = double.IsInfinity(a.Real) || double.IsInfinity(a.Imaginary);
            bool ib = double.IsInfinity(b.Real) || double.IsInfinity(b.Imaginary);
            if (ia || ib) return ia && ib && a.Real == b.Real && a.Imaginary == b.Imaginary;
            double diff = Complex.Abs(a - b);
            double scale = Math.Max(Complex.Abs(a), Complex.Abs(b));
            return diff <= settings.RelativeTolerance * scale || (absoluteFloor && diff <= 1e-12);
        }

        /// <summary>l₁ − r₁ and l₂ − r₂ agree up to a non-zero constant factor at every point.</summary>
        bool EquationsEqual(Equation x, Equation y)
        {
            int points = Math.Max(2, settings.Points + 1);
            Complex k = default;
            for (int p = 0; p < points; p++)
            {
                var dx = x.Left.Eval(p) - x.Right.Eval(p);
                var dy = y.Left.Eval(p) - y.Right.Eval(p);
                if (p == 0)
                {
                    if (Complex.Abs(dx) < 1e-12 && Complex.Abs(dy) < 1e-12) { k = Complex.Zero; continue; }
                    if (Complex.Abs(dy) < 1e-12) return false;
                    k = dx / dy;
                    if (Complex.Abs(k) < 1e-12) return false;
                }
                else if (k == Complex.Zero)
                {
                    if (!(Complex.Abs(dx) < 1e-12 && Complex.Abs(dy) < 1e-12)) return false;
                }
                else if (!Close(dx, k * dy, true)) return false;
            }
            return true;
        }
    }
}

/// <summary>An answer's shape.</summary>
internal abstract class Answer { }
/// <summary>One expression.</summary>
internal sealed class Scalar(Expr e) : Answer { public readonly Expr E = e; }
/// <summary>An ordered bracketed sequence: tuple, interval, matrix row; brackets must match to be equal.</summary>
internal sealed class Seq(char open, char close, Answer[] items) : Answer { public readonly char Open = open, Close = close; public readonly Answer[] Items = items; }
/// <summary>Items without order: a set, a bare comma list, the two branches of ±, a union of intervals.</summary>
internal sealed class Bag(Answer[] items, bool bare) : Answer { public readonly Answer[] Items = items; public readonly bool Bare = bare; }
/// <summary>An equation whose left side is not a lone variable.</summary>
internal sealed class Equation(Expr left, Expr right) : Answer { public readonly Expr Left = left, Right = right; }
/// <summary>Anything else, compared by <see cref="AnswerNormalizer.TextKey"/>.</summary>
internal sealed class Text(string key) : Answer { public readonly string Key = key; }

/// <summary>Turns normalised answer text into an <see cref="Answer"/>. Never throws.</summary>
internal static class StructuredAnswer
{
    const int MaxDepth = 16;

    public static Answer Parse(string s) => Parse(s, 0, s.Length, 0);

    static Answer Parse(string s, int start, int end, int depth)
    {
        while (start < end && s[start] == ' ') start++;
        while (end > start && s[end - 1] == ' ') end--;
        if (start >= end) return new Text("");
        if (depth > MaxDepth) return TextOf(s, start, end);

        // Matrices and column vectors.
        if (s[start] == '\\' && string.CompareOrdinal(s, start, "\\begin{", 0, 7) == 0)
        {
            var m = ParseMatrix(s, start, end, depth);
            if (m is not null) return m;
        }
        // A union of intervals.
        var cups = TopLevelCommand(s, start, end, "\\cup");
        if (cups.Count > 0) return new Bag(Split(s, start, end, cups, 4, depth), false);
        // A bare list.
        var commas = TopLevel(s, start, end, ',', ';');
        if (commas.Count > 0) return new Bag(Flatten(Split(s, start, end, commas, 1, depth)), true);
        // One bracketed group spanning the whole answer.
        int openLen = s[start] is '(' or '[' ? 1 : string.CompareOrdinal(s, start, "\\{", 0, 2) == 0 ? 2 : 0;
        if (openLen > 0)
        {
            int close = MatchingClose(s, start, end);
            if (close >= 0)
            {
                int closeLen = s[close] == '\\' ? 2 : 1;
                if (close + closeLen == end)
                {
                    int innerStart = start + openLen, innerEnd = close;
                    var inner = TopLevel(s, innerStart, innerEnd, ',', ';');
                    if (openLen == 2)
                        return new Bag(Flatten(inner.Count == 0 ? [Parse(s, innerStart, innerEnd, depth + 1)] : Split(s, innerStart, innerEnd, inner, 1, depth)), false);
                    char o = s[start], c = s[close];
                    if (inner.Count > 0) return new Seq(o, c, Split(s, innerStart, innerEnd, inner, 1, depth));
                    if ((o, c) is ('(', ')') or ('[', ']')) return Parse(s, innerStart, innerEnd, depth + 1);
                    return TextOf(s, start, end);
                }
            }
        }
        // Equations: "x = 5" is 5; other equations are compared as equations.
        var eqs = TopLevel(s, start, end, '=', '\0');
        if (eqs.Count == 1)
        {
            var left = LatexParser.Parse(s, start, eqs[0]);
            if (left is { Op: Op.Var }) return Parse(s, eqs[0] + 1, end, depth + 1);
            var right = LatexParser.Parse(s, eqs[0] + 1, end);
            if (left is not null && right is not null) return new Equation(left, right);
            return TextOf(s, start, end);
        }
        if (eqs.Count > 1) return TextOf(s, start, end);
        // a ± b.
        var pm = TopLevelCommand(s, start, end, "\\pm");
        if (pm.Count == 0) pm = TopLevelCommand(s, start, end, "\\mp");
        if (pm.Count == 1)
        {
            string head = s[start..pm[0]], tail = s[(pm[0] + 3)..end];
            var plus = LatexParser.Parse(head + "+" + tail);
            var minus = LatexParser.Parse(head + "-(" + tail + ")");
            if (plus is not null && minus is not null) return new Bag([new Scalar(plus), new Scalar(minus)], false);
            return TextOf(s, start, end);
        }
        var e = LatexParser.Parse(s, start, end);
        return e is not null ? new Scalar(e) : TextOf(s, start, end);
    }

    static Text TextOf(string s, int start, int end) => new(AnswerNormalizer.TextKey(s.Substring(start, end - start)));

    static Answer[] Split(string s, int start, int end, List<int> at, int sepLen, int depth)
    {
        var parts = new Answer[at.Count + 1];
        int from = start;
        for (int k = 0; k < at.Count; k++)
        {
            parts[k] = Parse(s, from, at[k], depth + 1);
            from = at[k] + sepLen;
        }
        parts[^1] = Parse(s, from, end, depth + 1);
        return parts;
    }

    /// <summary>The two branches of a ± inside a list are two items of that list.</summary>
    static Answer[] Flatten(Answer[] items)
    {
        if (!items.Any(i => i is Bag { Bare: false } b && b.Items.All(x => x is Scalar))) return items;
        var flat = new List<Answer>();
        foreach (var i in items)
            if (i is Bag { Bare: false } b && b.Items.All(x => x is Scalar)) flat.AddRange(b.Items); else flat.Add(i);
        return flat.ToArray();
    }

    static bool IsOpen(string s, int i, out int len)
    {
        char c = s[i];
        if (c is '(' or '[' or '{') { len = 1; return true; }
        if (c == '\\' && i + 1 < s.Length && s[i + 1] == '{') { len = 2; return true; }
        len = 0; return false;
    }

    static bool IsClose(string s, int i, out int len)
    {
        char c = s[i];
        if (c is ')' or ']' or '}') { len = 1; return true; }
        if (c == '\\' && i + 1 < s.Length && s[i + 1] == '}') { len = 2; return true; }
        len = 0; return false;
    }

    /// <summary>Index of the closer of the group opened at <paramref name="start"/> (any bracket kind closes, so
    /// half-open intervals work), or -1.</summary>
    static int MatchingClose(string s, int start, int end)
    {
        int d = 0;
        for (int i = start; i < end; i++)
        {
            if (IsOpen(s, i, out int ol)) { d++; i += ol - 1; }
            else if (IsClose(s, i, out int cl)) { if (--d == 0) return i; i += cl - 1; }
        }
        return -1;
    }

    static List<int> TopLevel(string s, int start, int end, char a, char b)
    {
        var found = new List<int>();
        int d = 0;
        for (int i = start; i < end; i++)
        {
            if (IsOpen(s, i, out int ol)) { d++; i += ol - 1; }
            else if (IsClose(s, i, out int cl)) { d--; i += cl - 1; }
            else if (d == 0 && (s[i] == a || s[i] == b)) found.Add(i);
        }
        return found;
    }

    static List<int> TopLevelCommand(string s, int start, int end, string command)
    {
        var found = new List<int>();
        if (s.IndexOf(command, start, end - start, StringComparison.Ordinal) < 0) return found;
        int d = 0;
        for (int i = start; i < end; i++)
        {
            if (IsOpen(s, i, out int ol)) { d++; i += ol - 1; }
            else if (IsClose(s, i, out int cl)) { d--; i += cl - 1; }
            else if (d == 0 && s[i] == '\\' && string.CompareOrdinal(s, i, command, 0, command.Length) == 0
                     && (i + command.Length >= end || !char.IsAsciiLetter(s[i + command.Length])))
                found.Add(i);
        }
        return found;
    }

    static readonly string[] MatrixKinds = ["pmatrix", "bmatrix", "matrix", "smallmatrix", "Bmatrix"];

    static Answer? ParseMatrix(string s, int start, int end, int depth)
    {
        foreach (var kind in MatrixKinds)
        {
            string open = "\\begin{" + kind + "}", close = "\\end{" + kind + "}";
            if (string.CompareOrdinal(s, start, open, 0, open.Length) != 0) continue;
            if (end - start < open.Length + close.Length || string.CompareOrdinal(s, end - close.Length, close, 0, close.Length) != 0) return null;
            var body = s.Substring(start + open.Length, end - start - open.Length - close.Length);
            var rows = body.Split("\\\\", StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var parsedRows = rows.Select(r => r.Split('&').Select(cell => Parse(cell, 0, cell.Length, depth + 1)).ToArray()).ToArray();
            // A single column or a single row is a vector: compare it as a tuple (a, b, c).
            if (parsedRows.All(r => r.Length == 1)) return new Seq('(', ')', parsedRows.Select(r => r[0]).ToArray());
            if (parsedRows.Length == 1) return new Seq('(', ')', parsedRows[0]);
            return new Seq('M', 'M', parsedRows.Select(r => (Answer)new Seq('(', ')', r)).ToArray());
        }
        return null;
    }
}
