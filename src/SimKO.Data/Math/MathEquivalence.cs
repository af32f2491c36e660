using System.Globalization;
using System.Text;

namespace SimKO.Data.Math;

/// <summary>
/// Whether a predicted answer is mathematically the same as a reference answer: numbers (commas,
/// trailing zeros, percent, scientific notation), fractions, LaTeX noise and units, radicals and π,
/// expressions (compared by value at fixed pseudo-random points), equations <c>x = 5</c> against
/// <c>5</c>, intervals and tuples element by element, sets and bare lists in any order, matrices.
/// Numbers agree within a relative tolerance of 1e-4. Whatever cannot be parsed is compared as
/// normalised text. Never throws.
/// </summary>
public static class MathEquivalence
{
    /// <summary>Relative tolerance on values.</summary>
    public const double RelativeTolerance = 1e-4;

    /// <summary>True when <paramref name="prediction"/> is mathematically equivalent to <paramref name="reference"/>.</summary>
    public static bool Equivalent(string? prediction, string? reference)
    {
        if (prediction is null || reference is null) return false;
        var a = prediction.Trim();
        var b = reference.Trim();
        if (a.Length == 0 || b.Length == 0) return false;
        if (a == b) return true;
        if (TryPlainNumber(a, out var x) && TryPlainNumber(b, out var y)) return Close(x, y);
        try
        {
            var na = Normalize(a, out bool pa);
            var nb = Normalize(b, out bool pb);
            if (na.Length == 0 || nb.Length == 0) return false;
            if (Compare(na, nb, 0)) return true;
            // 8% against 0.08
            if (pa != pb)
            {
                var ea = LatexExpression.TryParse(na);
                var eb = LatexExpression.TryParse(nb);
                if (ea?.Constant is double va && eb?.Constant is double vb)
                    return Close(pa ? va / 100 : va, pb ? vb / 100 : vb);
            }
            return false;
        }
        catch (Exception)
        {
            return Key(a) == Key(b);
        }
    }

    /// <summary>A decimal number as written (sign, digits, point, exponent); nothing else.</summary>
    static bool TryPlainNumber(string s, out double v)
    {
        v = 0;
        foreach (char c in s)
            if (!(char.IsAsciiDigit(c) || c is '.' or '-' or '+' or 'e' or 'E')) return false;
        return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out v) && double.IsFinite(v);
    }

    static bool Close(double x, double y, double absolute = 0)
    {
        if (x == y) return true;
        if (!double.IsFinite(x) || !double.IsFinite(y)) return false;
        return System.Math.Abs(x - y) <= RelativeTolerance * System.Math.Max(System.Math.Abs(x), System.Math.Abs(y)) + absolute;
    }

    static string Key(string s) => s.Replace(" ", "");

    // ---- normalisation ------------------------------------------------------------------------

    static readonly (string From, string To)[] Replacements =
    [
        ("\\left", ""), ("\\right", ""), ("\\bigl", ""), ("\\bigr", ""), ("\\Bigl", ""), ("\\Bigr", ""),
        ("\\big", ""), ("\\Big", ""), ("\\displaystyle", ""),
        ("\\!", ""), ("\\,", ""), ("\\;", " "), ("\\:", " "), ("\\qquad", " "), ("\\quad", " "), ("\\ ", " "),
        ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\cfrac", "\\frac"),
        ("\\$", ""), ("\\%", "%"), ("{,}", ","),
        ("^{\\circ}", ""), ("^\\circ", ""), ("\\circ", ""), ("^{\\prime}", "'"), ("\\prime", "'"),
        ("\\cdot", "*"), ("\\times", "*"), ("\\div", "/"), ("\\ast", "*"),
        ("\\lbrace", "\\{"), ("\\rbrace", "\\}"), ("\\{", "«"), ("\\}", "»"),
        ("\\infin", "\\infty"), ("\\leq", "\\le"), ("\\geq", "\\ge"), ("\\neq", "\\ne"),
        ("\\mathrm{~", "\\mathrm{"),
    ];

    static readonly (string From, string To)[] UnicodeReplacements =
    [
        ("−", "-"), ("–", "-"), ("×", "*"), ("·", "*"), ("÷", "/"), ("π", "\\pi"), ("∞", "\\infty"),
        ("°", ""), ("√", "\\sqrt"), ("≤", "\\le"), ("≥", "\\ge"), ("∪", "\\cup"), ("±", "\\pm"), ("\u00a0", " "),
    ];

    static readonly string[] TextCommands =
        ["\\text", "\\textbf", "\\textit", "\\textrm", "\\textnormal", "\\mathrm", "\\mbox", "\\hbox", "\\operatorname", "\\mathit", "\\textsf"];

    static readonly HashSet<string> Units = new(StringComparer.OrdinalIgnoreCase)
    {
        "cm", "m", "km", "mm", "nm", "inch", "inches", "ft", "feet", "foot", "yard", "yards", "mile", "miles",
        "meter", "meters", "metre", "metres", "centimeter", "centimeters", "kilometer", "kilometers",
        "unit", "units", "degree", "degrees", "deg", "dollar", "dollars", "cent", "cents", "euro", "euros",
        "second", "seconds", "sec", "s", "minute", "minutes", "min", "mins", "hour", "hours", "hr", "hrs", "h",
        "day", "days", "week", "weeks", "month", "months", "year", "years",
        "gram", "grams", "g", "kg", "kilogram", "kilograms", "pound", "pounds", "lb", "lbs", "ounce", "ounces", "oz",
        "liter", "liters", "litre", "litres", "ml", "gallon", "gallons", "mph", "km/h", "m/s", "kph",
        "square", "sq", "cubic", "cm^2", "m^2", "cm^3", "m^3", "people", "persons", "students", "ways", "points",
        "j", "kj", "ev", "kev", "mev", "k", "n", "pa", "w", "v", "hz", "ly", "pc", "au", "mpc", "kpc", "\\mu m", "\\mu", "a",
    };

    /// <summary>LaTeX noise, delimiters, units and text wrappers removed; set braces as « ».
    /// <paramref name="percent"/> says whether a percent sign was dropped.</summary>
    internal static string Normalize(string s, out bool percent)
    {
        var t = s;
        foreach (var (from, to) in UnicodeReplacements)
            if (t.Contains(from, StringComparison.Ordinal)) t = t.Replace(from, to, StringComparison.Ordinal);
        t = t.Replace('\n', ' ').Replace('\t', ' ').Replace('$', ' ');
        t = UnwrapCommand(t, "\\boxed");
        t = UnwrapCommand(t, "\\fbox");
        if (t.Contains('\\'))
        {
            t = t.Replace("\\\\", "¶"); // matrix row breaks, kept apart from \, \! …
            foreach (var (from, to) in Replacements)
                if (t.Contains(from, StringComparison.Ordinal)) t = t.Replace(from, to, StringComparison.Ordinal);
            t = StripTextCommands(t);
        }
        percent = t.Contains('%');
        if (percent) t = t.Replace("%", "").Replace("percent", "");
        t = t.Replace('~', ' ');
        t = CollapseSpaces(t);
        t = t.TrimEnd('.', ' ').Trim();
        if (t.Contains(" and ", StringComparison.Ordinal)) t = t.Replace(" and ", ", ");
        if (t.StartsWith("or ", StringComparison.Ordinal)) t = t[3..];
        t = StripTrailingUnits(t);
        t = StripThousands(t);
        // (B), \text{(B)} → B
        if (t.Length == 3 && t[0] == '(' && t[2] == ')' && t[1] is >= 'A' and <= 'E') t = t[1].ToString();
        // x \in (2, \infty) → (2, \infty)
        int inAt = IndexOfCommand(t, "\\in");
        if (inAt > 0 && IsVariableName(t[..inAt].Trim())) t = t[(inAt + 3)..].Trim();
        return t;
    }

    static string CollapseSpaces(string t)
    {
        if (!t.Contains("  ", StringComparison.Ordinal)) return t.Trim();
        var sb = new StringBuilder(t.Length);
        foreach (char c in t)
            if (c != ' ' || (sb.Length > 0 && sb[^1] != ' ')) sb.Append(c);
        return sb.ToString().Trim();
    }

    /// <summary><c>\boxed{X}</c> spanning the whole text → X.</summary>
    static string UnwrapCommand(string t, string cmd)
    {
        var trimmed = t.Trim();
        if (!trimmed.StartsWith(cmd, StringComparison.Ordinal)) return t;
        var inner = AnswerExtraction.LastBoxed(trimmed);
        if (inner is null) return t;
        int open = trimmed.IndexOf('{');
        return open >= 0 && Matching(trimmed, open) == trimmed.Length - 1 ? inner : t;
    }

    /// <summary>\text{…} and friends: the whole answer → its content; a unit after a value → removed
    /// (with a following ^2 or ^{3}); anything else → its content.</summary>
    static string StripTextCommands(string t)
    {
        foreach (var cmd in TextCommands)
        {
            int guard = 0;
            while (guard++ < 32)
            {
                int at = IndexOfCommand(t, cmd);
                if (at < 0) break;
                int open = at + cmd.Length;
                while (open < t.Length && t[open] == ' ') open++;
                if (open >= t.Length || t[open] != '{') { t = t.Remove(at, cmd.Length); continue; }
                int close = Matching(t, open);
                if (close < 0) break;
                var content = t[(open + 1)..close];
                var trimmed = content.Trim().Trim('~').Trim();
                int end = close + 1;
                bool wholeAnswer = t[..at].Trim().Length == 0 && t[end..].Trim().Length == 0;
                string replacement;
                if (!wholeAnswer && Units.Contains(trimmed.Replace("~", "")))
                {
                    replacement = " ";
                    end = SkipPower(t, end);
                }
                else replacement = wholeAnswer ? trimmed : " " + content + " ";
                t = t[..at] + replacement + t[end..];
            }
        }
        return t;
    }

    static int IndexOfCommand(string t, string cmd)
    {
        int from = 0;
        while (true)
        {
            int at = t.IndexOf(cmd, from, StringComparison.Ordinal);
            if (at < 0) return -1;
            int after = at + cmd.Length;
            if (after >= t.Length || !char.IsAsciiLetter(t[after])) return at;
            from = after;
        }
    }

    static int SkipPower(string t, int i)
    {
        int j = i;
        while (j < t.Length && t[j] == ' ') j++;
        if (j < t.Length && t[j] == '^')
        {
            j++;
            if (j < t.Length && t[j] == '{') { int c = Matching(t, j); return c < 0 ? i : c + 1; }
            if (j < t.Length && char.IsAsciiDigit(t[j])) return j + 1;
        }
        return i;
    }

    /// <summary>Trailing unit words (<c>5 cm</c>, <c>27 miles</c>) when what precedes has no letters of its own.</summary>
    static string StripTrailingUnits(string t)
    {
        for (int round = 0; round < 3; round++)
        {
            int end = t.Length;
            int cut = end;
            // a trailing ^2 / ^{2}
            if (end >= 2 && t[end - 2] == '^' && char.IsAsciiDigit(t[end - 1])) cut = end - 2;
            else if (end >= 4 && t[end - 1] == '}' && t[end - 4] == '^' && t[end - 3] == '{') cut = end - 4;
            int i = cut;
            while (i > 0 && (char.IsAsciiLetter(t[i - 1]) || t[i - 1] == '/')) i--;
            if (i == cut || i == 0) return t;
            if (i > 0 && t[i - 1] == '\\') return t;
            var word = t[i..cut];
            // single letters (2n, 3 m) are too often variables to drop
            if (word.Length < 2 || !Units.Contains(word)) return t;
            var rest = t[..i].TrimEnd();
            if (rest.Length == 0 || !LooksNumeric(rest)) return t;
            t = rest;
        }
        return t;
    }

    static bool LooksNumeric(string s)
    {
        bool digit = false;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsAsciiDigit(c)) digit = true;
            else if (c == '\\') { i++; while (i < s.Length && char.IsAsciiLetter(s[i])) i++; i--; }
            else if (char.IsLetter(c)) return false;
        }
        return digit;
    }

    /// <summary>1,234,567.5 → 1234567.5 (only when every group after the first has three digits).</summary>
    static string StripThousands(string t)
    {
        if (!t.Contains(',') || t.Length > 40) return t;
        int i = 0;
        if (i < t.Length && t[i] == '-') i++;
        int lead = 0;
        while (i < t.Length && char.IsAsciiDigit(t[i])) { i++; lead++; }
        if (lead is 0 or > 3) return t;
        int groups = 0;
        while (i < t.Length && t[i] == ',')
        {
            int g = 0;
            i++;
            while (i < t.Length && char.IsAsciiDigit(t[i])) { i++; g++; }
            if (g != 3) return t;
            groups++;
        }
        if (groups == 0) return t;
        if (i < t.Length && t[i] == '.')
        {
            i++;
            while (i < t.Length && char.IsAsciiDigit(t[i])) i++;
        }
        return i == t.Length ? t.Replace(",", "") : t;
    }

    static bool IsVariableName(string s)
    {
        if (s.Length == 0 || s.Length > 24) return false;
        if (s[0] == '\\') return s.Length > 1 && s.Skip(1).All(c => char.IsAsciiLetter(c) || c is '_' or '{' or '}' or '\'' || char.IsAsciiDigit(c));
        if (!char.IsAsciiLetter(s[0])) return false;
        // x, x_1, x_{12}, f(x), f(n), a_n, y'
        return s.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '{' or '}' or '(' or ')' or '\'' or ',' or ' ' or '\\');
    }

    // ---- structure ----------------------------------------------------------------------------

    static bool IsOpen(char c) => c is '(' or '[' or '{' or '«';
    static bool IsClose(char c) => c is ')' or ']' or '}' or '»';

    /// <summary>Index of the bracket that closes the one at <paramref name="open"/>, any kinds mixed (for intervals).</summary>
    static int Matching(string t, int open)
    {
        int depth = 0;
        for (int i = open; i < t.Length; i++)
        {
            if (IsOpen(t[i])) depth++;
            else if (IsClose(t[i]) && --depth == 0) return i;
        }
        return -1;
    }

    static List<string> SplitTopLevel(string t, string separator)
    {
        var parts = new List<string>();
        int depth = 0, start = 0;
        for (int i = 0; i < t.Length; i++)
        {
            char c = t[i];
            if (IsOpen(c)) depth++;
            else if (IsClose(c)) depth--;
            else if (depth == 0 && string.CompareOrdinal(t, i, separator, 0, separator.Length) == 0
                     && !(separator[0] == '\\' && i + separator.Length < t.Length && char.IsAsciiLetter(t[i + separator.Length])))
            {
                parts.Add(t[start..i].Trim());
                start = i + separator.Length;
                i = start - 1;
            }
        }
        parts.Add(t[start..].Trim());
        return parts;
    }

    /// <summary>Items of a bare list, with a ± expanded into its two values.</summary>
    static List<string> Items(string t)
    {
        var items = SplitTopLevel(t, ",");
        if (!t.Contains("\\pm", StringComparison.Ordinal) && !t.Contains("\\mp", StringComparison.Ordinal)) return items;
        var expanded = new List<string>(items.Count + 1);
        foreach (var item in items)
        {
            var pm = SplitTopLevel(item, "\\pm");
            if (pm.Count != 2) pm = SplitTopLevel(item, "\\mp");
            if (pm.Count == 2)
            {
                var lhs = pm[0];
                expanded.Add(lhs + "+(" + pm[1] + ")");
                expanded.Add(lhs + "-(" + pm[1] + ")");
            }
            else expanded.Add(item);
        }
        return expanded;
    }

    static bool Wrapped(string t) =>
        t.Length >= 2 && IsOpen(t[0]) && IsClose(t[^1]) && Matching(t, 0) == t.Length - 1;

    static bool Compare(string a, string b, int depth)
    {
        if (Key(a) == Key(b)) return true;
        if (depth > 6) return false;

        bool ma = a.Contains("\\begin{", StringComparison.Ordinal), mb = b.Contains("\\begin{", StringComparison.Ordinal);
        if (ma || mb)
        {
            var xa = ma ? Matrix(a) : null;
            var xb = mb ? Matrix(b) : null;
            if ((ma && xa is null) || (mb && xb is null)) return false;
            // a matrix against a tuple: a row or column vector element-wise
            var ea = xa?.SelectMany(r => r).ToList() ?? (Wrapped(a) ? SplitTopLevel(a[1..^1], ",") : null);
            var eb = xb?.SelectMany(r => r).ToList() ?? (Wrapped(b) ? SplitTopLevel(b[1..^1], ",") : null);
            if (ea is null || eb is null || ea.Count != eb.Count) return false;
            if (xa is not null && xb is not null && xa.Count != xb.Count) return false;
            for (int i = 0; i < ea.Count; i++) if (!Compare(ea[i], eb[i], depth + 1)) return false;
            return true;
        }

        // a set \{…\} is a bare list in any order
        if (a.Length >= 2 && a[0] == '«' && Wrapped(a)) a = a[1..^1].Trim();
        if (b.Length >= 2 && b[0] == '«' && Wrapped(b)) b = b[1..^1].Trim();

        var ia = Items(a);
        var ib = Items(b);
        if (ia.Count > 1 || ib.Count > 1)
        {
            if (ia.Count != ib.Count) return false;
            return ia.Count <= 12 ? Unordered(ia, ib, depth) : OrderedOrSorted(ia, ib, depth);
        }

        // tuples and intervals: same brackets, element by element
        bool wa = Wrapped(a), wb = Wrapped(b);
        if (wa || wb)
        {
            var ta = wa ? SplitTopLevel(a[1..^1], ",") : null;
            var tb = wb ? SplitTopLevel(b[1..^1], ",") : null;
            bool tupleA = ta is { Count: > 1 }, tupleB = tb is { Count: > 1 };
            if (tupleA || tupleB)
            {
                if (!(tupleA && tupleB) || ta!.Count != tb!.Count) return false;
                if (NormalBracket(a[0]) != NormalBracket(b[0]) || NormalBracket(a[^1]) != NormalBracket(b[^1])) return false;
                for (int i = 0; i < ta.Count; i++) if (!Compare(ta[i], tb[i], depth + 1)) return false;
                return true;
            }
        }

        // unions of intervals, in order
        if (a.Contains("\\cup", StringComparison.Ordinal) || b.Contains("\\cup", StringComparison.Ordinal))
        {
            var ua = SplitTopLevel(a, "\\cup");
            var ub = SplitTopLevel(b, "\\cup");
            if (ua.Count > 1 || ub.Count > 1)
            {
                if (ua.Count != ub.Count) return false;
                for (int i = 0; i < ua.Count; i++) if (!Compare(ua[i], ub[i], depth + 1)) return false;
                return true;
            }
        }
        return Scalar(a, b);
    }

    static char NormalBracket(char c) => c switch { '{' => '(', '}' => ')', _ => c };

    static bool Unordered(List<string> ia, List<string> ib, int depth)
    {
        var used = new bool[ib.Count];
        foreach (var x in ia)
        {
            bool found = false;
            for (int j = 0; j < ib.Count && !found; j++)
                if (!used[j] && Compare(x, ib[j], depth + 1)) { used[j] = true; found = true; }
            if (!found) return false;
        }
        return true;
    }

    static bool OrderedOrSorted(List<string> ia, List<string> ib, int depth)
    {
        bool ordered = true;
        for (int i = 0; i < ia.Count && ordered; i++) ordered = Compare(ia[i], ib[i], depth + 1);
        if (ordered) return true;
        // long lists: compare sorted keys (exact) — still order-free for numbers written alike
        var ka = ia.Select(Key).OrderBy(x => x, StringComparer.Ordinal).ToList();
        var kb = ib.Select(Key).OrderBy(x => x, StringComparer.Ordinal).ToList();
        return ka.SequenceEqual(kb) || Unordered(ia, ib, depth);
    }

    /// <summary>Rows of a <c>\begin{pmatrix}…\end{pmatrix}</c> (any matrix environment), or null.</summary>
    static List<List<string>>? Matrix(string t)
    {
        int b = t.IndexOf("\\begin{", StringComparison.Ordinal);
        int nameEnd = t.IndexOf('}', b);
        if (nameEnd < 0) return null;
        int e = t.LastIndexOf("\\end{", StringComparison.Ordinal);
        if (e < nameEnd) return null;
        if (t[..b].Trim().Length > 0 || t[(t.IndexOf('}', e) + 1)..].Trim().Length > 0) return null;
        var body = t[(nameEnd + 1)..e];
        var rows = body.Split('¶').Select(r => r.Trim()).Where(r => r.Length > 0)
            .Select(r => r.Split('&').Select(x => x.Trim()).ToList()).ToList();
        return rows.Count == 0 ? null : rows;
    }

    // ---- single values ------------------------------------------------------------------------

    static bool Scalar(string a, string b)
    {
        if (Key(a) == Key(b)) return true;
        var (la, ra) = SplitEquation(a);
        var (lb, rb) = SplitEquation(b);
        if (la is not null && lb is null) return (IsNamedQuantity(la) && Value(ra!, b)) || (IsVariableName(ra!) && Value(la, b));
        if (lb is not null && la is null) return (IsNamedQuantity(lb) && Value(a, rb!)) || (IsVariableName(rb!) && Value(a, lb));
        if (la is not null && lb is not null)
            return (Value(la, lb) && Value(ra!, rb!)) || (Value(la, rb!) && Value(ra!, lb));
        return Value(a, b);
    }

    /// <summary>The left side of a definition (<c>x</c>, <c>f(n)</c>, <c>\frac{dM}{dt}</c>, <c>\angle ABC</c>):
    /// one term with a letter in it, so that <c>y' + ry = 0</c> is not read as the value 0.</summary>
    static bool IsNamedQuantity(string lhs)
    {
        if (IsVariableName(lhs)) return true;
        bool letter = false;
        int depth = 0;
        for (int i = 0; i < lhs.Length; i++)
        {
            char c = lhs[i];
            if (IsOpen(c)) depth++;
            else if (IsClose(c)) depth--;
            else if (depth == 0 && c is '+' or '-') return false;
            else if (char.IsAsciiLetter(c)) letter = true;
        }
        return letter;
    }

    /// <summary>Sides of a single top-level <c>=</c> (not part of <c>\le</c>, <c>&lt;=</c>, …), or (null, t).</summary>
    static (string? Lhs, string? Rhs) SplitEquation(string t)
    {
        int at = -1;
        int depth = 0;
        for (int i = 0; i < t.Length; i++)
        {
            char c = t[i];
            if (IsOpen(c)) depth++;
            else if (IsClose(c)) depth--;
            else if (c == '=' && depth == 0)
            {
                if (at >= 0) return (null, t);
                if (i > 0 && t[i - 1] is '<' or '>' or '!' or ':') return (null, t);
                at = i;
            }
        }
        if (at <= 0 || at == t.Length - 1) return (null, t);
        return (t[..at].Trim(), t[(at + 1)..].Trim());
    }

    /// <summary>Fixed pseudo-random points in (0.3, 2.3) per variable, so grading is deterministic.</summary>
    static readonly double[][] Points = BuildPoints();

    static double[][] BuildPoints()
    {
        var rng = new Random(20250917);
        var pts = new double[4][];
        for (int k = 0; k < pts.Length; k++)
        {
            pts[k] = new double[32];
            for (int i = 0; i < 32; i++) pts[k][i] = 0.3 + 2 * rng.NextDouble();
        }
        return pts;
    }

    static bool Value(string a, string b)
    {
        if (Key(a) == Key(b)) return true;
        if (TryPlainNumber(a, out var x) && TryPlainNumber(b, out var y)) return Close(x, y);
        var ea = LatexExpression.TryParse(a);
        if (ea is null) return false;
        var eb = LatexExpression.TryParse(b);
        if (eb is null) return false;
        if (ea.Constant is double va && eb.Constant is double vb)
        {
            if (double.IsInfinity(va) || double.IsInfinity(vb))
                return va == vb && a.Contains("infty", StringComparison.Ordinal) && b.Contains("infty", StringComparison.Ordinal);
            return Close(va, vb, 1e-12);
        }
        // both as functions of the union of their variables, at a few fixed points
        var names = new List<string>(ea.Variables);
        foreach (var v in eb.Variables) if (!names.Contains(v)) names.Add(v);
        if (names.Count > 32) return false;
        var mapA = ea.Variables.Select(v => names.IndexOf(v)).ToArray();
        var mapB = eb.Variables.Select(v => names.IndexOf(v)).ToArray();
        var envA = new double[mapA.Length];
        var envB = new double[mapB.Length];
        int compared = 0;
        foreach (var point in Points)
        {
            for (int i = 0; i < mapA.Length; i++) envA[i] = point[mapA[i]];
            for (int i = 0; i < mapB.Length; i++) envB[i] = point[mapB[i]];
            double fa = ea.Evaluate(envA), fb = eb.Evaluate(envB);
            bool okA = double.IsFinite(fa), okB = double.IsFinite(fb);
            if (okA != okB) return false;
            if (!okA) continue;
            if (!Close(fa, fb, 1e-12)) return false;
            compared++;
        }
        return compared > 0;
    }
}
