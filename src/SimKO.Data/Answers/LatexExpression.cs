using System.Numerics;

namespace SimKO.Data.Answers;

/// <summary>Operation of an expression node.</summary>
internal enum Op : byte
{
    Num, Var, Add, Sub, Mul, Div, Pow, Neg, Func, Fact, Abs, Floor, Ceil, Binom, Root,
}

/// <summary>
/// A parsed arithmetic expression, evaluated over complex numbers (so <c>6-5i</c>, <c>\sqrt{-3}</c> work).
/// Variables take deterministic pseudo-random values that depend only on their name and the evaluation
/// point, so two expressions are compared by evaluating both at the same few points.
/// </summary>
internal sealed class Expr
{
    public readonly Op Op;
    public readonly Expr? A, B;
    public readonly Complex Value;   // Num
    public readonly string? Name;    // Var name, Func name
    public readonly bool HasVars;
    /// <summary>True for a plain number written as such (no operation other than a sign).</summary>
    public readonly bool IsLiteral;

    Expr(Op op, Expr? a, Expr? b, Complex value, string? name)
    {
        Op = op; A = a; B = b; Value = value; Name = name;
        HasVars = op == Op.Var || (a?.HasVars ?? false) || (b?.HasVars ?? false);
        IsLiteral = op == Op.Num || (op == Op.Neg && a!.Op == Op.Num);
    }

    public static Expr Number(double v) => new(Op.Num, null, null, new Complex(v, 0), null);
    public static Expr Constant(Complex v) => new(Op.Num, null, null, v, "const");
    public static Expr Variable(string name) => new(Op.Var, null, null, default, name);
    public static Expr Unary(Op op, Expr a, string? name = null) => new(op, a, null, default, name);
    public static Expr Binary(Op op, Expr a, Expr b) => new(op, a, b, default, null);

    /// <summary>Value at evaluation point <paramref name="point"/> (0, 1, 2, …); NaN when undefined.</summary>
    public Complex Eval(int point)
    {
        switch (Op)
        {
            case Op.Num: return Value;
            case Op.Var: return VariableValue(Name!, point);
            case Op.Neg: return -A!.Eval(point);
            case Op.Add: return A!.Eval(point) + B!.Eval(point);
            case Op.Sub: return A!.Eval(point) - B!.Eval(point);
            case Op.Mul: return A!.Eval(point) * B!.Eval(point);
            case Op.Div:
            {
                var d = B!.Eval(point);
                return d == Complex.Zero ? Complex.NaN : A!.Eval(point) / d;
            }
            case Op.Pow: return Power(A!.Eval(point), B!.Eval(point));
            case Op.Root:
            {
                var x = B!.Eval(point);
                var n = A!.Eval(point);
                // Real odd roots of negative reals stay real (\sqrt[3]{-8} = -2).
                if (IsReal(x) && IsReal(n) && x.Real < 0 && IsInteger(n.Real) && ((long)n.Real) % 2 != 0)
                    return new Complex(-Math.Pow(-x.Real, 1.0 / n.Real), 0);
                return Power(x, Complex.One / n);
            }
            case Op.Abs: return new Complex(Complex.Abs(A!.Eval(point)), 0);
            case Op.Floor: return RealOnly(A!.Eval(point), Math.Floor);
            case Op.Ceil: return RealOnly(A!.Eval(point), Math.Ceiling);
            case Op.Fact: return Factorial(A!.Eval(point));
            case Op.Binom: return Binomial(A!.Eval(point), B!.Eval(point));
            case Op.Func: return ApplyFunction(Name!, A!.Eval(point));
            default: return Complex.NaN;
        }
    }

    static bool IsReal(Complex z) => z.Imaginary == 0 || Math.Abs(z.Imaginary) <= 1e-14 * Math.Abs(z.Real);
    static bool IsInteger(double x) => Math.Abs(x - Math.Round(x)) < 1e-9 && Math.Abs(x) < 1e15;

    static Complex RealOnly(Complex z, Func<double, double> f) =>
        IsReal(z) && double.IsFinite(z.Real) ? new Complex(f(z.Real + 1e-12 * Math.Sign(z.Real)), 0) : Complex.NaN;

    internal static Complex SquareRoot(Complex x) =>
        IsReal(x) && x.Real >= 0 ? new Complex(Math.Sqrt(x.Real), 0) : Complex.Sqrt(x);

    static Complex Power(Complex b, Complex e)
    {
        if (IsReal(e) && IsInteger(e.Real) && Math.Abs(e.Real) <= 64)
        {
            // Exact repeated squaring: (-2)^3 = -8 with no rounding into the imaginary part.
            long n = (long)Math.Round(e.Real);
            bool inv = n < 0; n = Math.Abs(n);
            Complex r = Complex.One, x = b;
            while (n > 0) { if ((n & 1) == 1) r *= x; x *= x; n >>= 1; }
            if (!inv) return r;
            return r == Complex.Zero ? Complex.NaN : Complex.One / r;
        }
        if (IsReal(b) && IsReal(e) && b.Real >= 0) return new Complex(Math.Pow(b.Real, e.Real), 0);
        if (b == Complex.Zero) return IsReal(e) && e.Real > 0 ? Complex.Zero : Complex.NaN;
        return Complex.Pow(b, e);
    }

    static Complex Factorial(Complex z)
    {
        if (!IsReal(z) || !IsInteger(z.Real) || z.Real < 0 || z.Real > 170) return Complex.NaN;
        double r = 1;
        for (int k = 2; k <= (int)Math.Round(z.Real); k++) r *= k;
        return new Complex(r, 0);
    }

    static Complex Binomial(Complex n, Complex k)
    {
        if (!IsReal(n) || !IsReal(k) || !IsInteger(k.Real) || k.Real < 0 || k.Real > 1000) return Complex.NaN;
        int kk = (int)Math.Round(k.Real);
        double r = 1;
        for (int j = 0; j < kk; j++) r = r * (n.Real - j) / (j + 1);
        return new Complex(r, 0);
    }

    static Complex ApplyFunction(string f, Complex x) => f switch
    {
        "sin" => Complex.Sin(x),
        "cos" => Complex.Cos(x),
        "tan" => Complex.Tan(x),
        "cot" => Complex.One / Complex.Tan(x),
        "sec" => Complex.One / Complex.Cos(x),
        "csc" => Complex.One / Complex.Sin(x),
        "arcsin" => IsReal(x) && Math.Abs(x.Real) <= 1 ? new Complex(Math.Asin(x.Real), 0) : Complex.Asin(x),
        "arccos" => IsReal(x) && Math.Abs(x.Real) <= 1 ? new Complex(Math.Acos(x.Real), 0) : Complex.Acos(x),
        "arctan" => Complex.Atan(x),
        "sinh" => Complex.Sinh(x),
        "cosh" => Complex.Cosh(x),
        "tanh" => Complex.Tanh(x),
        "ln" or "log" => x == Complex.Zero ? Complex.NaN : Complex.Log(x),
        "lg" => x == Complex.Zero ? Complex.NaN : Complex.Log10(x),
        "exp" => Complex.Exp(x),
        "sqrt" => SquareRoot(x),
        _ when f.StartsWith("log_", StringComparison.Ordinal) && double.TryParse(f.AsSpan(4), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var b) && b > 0 && b != 1
            => x == Complex.Zero ? Complex.NaN : Complex.Log(x) / Math.Log(b),
        _ => Complex.NaN,
    };

    /// <summary>The value of variable <paramref name="name"/> at evaluation point <paramref name="point"/>:
    /// a pseudo-random real in [1.1, 2.9), the same for the same name and point in every expression.</summary>
    public static Complex VariableValue(string name, int point)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in name) { h ^= c; h *= 1099511628211UL; }
        h ^= (ulong)(point + 1) * 0x9E3779B97F4A7C15UL;
        h ^= h >> 33; h *= 0xff51afd7ed558ccdUL; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53UL; h ^= h >> 33;
        double u = (h >> 11) * (1.0 / (1UL << 53));
        return new Complex(1.1 + 1.8 * u, 0);
    }
}

/// <summary>
/// A small recursive-descent parser for LaTeX (and plain-text) arithmetic: <c>+ - * / ^</c>, <c>\times \cdot \div</c>,
/// <c>\frac{a}{b}</c> (also <c>\frac43</c>), <c>\sqrt[n]{x}</c>, <c>\binom</c>, <c>\pi</c>, <c>e</c>, <c>i</c>, <c>\infty</c>,
/// functions (<c>\sin</c>, <c>\ln</c>, <c>\log_2</c>, …), <c>|x|</c>, <c>\lfloor\rfloor</c>, <c>!</c>, implicit
/// multiplication (<c>2\sqrt{3}</c>, <c>(a+5)(b+2)</c>), subscripted names (<c>x_{0}</c>, <c>\omega_n</c>).
/// Returns null for anything else (never throws): runs of three or more letters that are not a function
/// name (words), a number with a subscript (a base, <c>52_8</c>), commas (tuples are handled one level up).
/// </summary>
internal sealed class LatexParser
{
    const int MaxDepth = 64;
    readonly string s;
    readonly int end;
    int pos, depth;

    LatexParser(string s, int start, int end) { this.s = s; pos = start; this.end = end; }

    /// <summary>Parses <c>s[start..end)</c> completely, or returns null.</summary>
    public static Expr? Parse(string s, int start, int end)
    {
        var p = new LatexParser(s, start, end);
        var e = p.ParseSum();
        p.SkipSpaces();
        return e is not null && p.pos == end ? e : null;
    }

    public static Expr? Parse(string s) => Parse(s, 0, s.Length);

    static readonly HashSet<string> Functions =
        ["sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "ln", "log", "lg", "exp"];

    /// <summary>Commands that cannot start an operand: operators, relations, delimiters.</summary>
    static readonly HashSet<string> NonOperands =
        ["times", "cdot", "div", "pm", "mp", "cup", "cap", "le", "leq", "ge", "geq", "ne", "neq", "lt", "gt", "in", "to",
         "rightarrow", "Rightarrow", "implies", "iff", "setminus", "rfloor", "rceil", "end", "begin", "ast", "approx",
         "equiv", "sim", "cdots", "ldots", "dots", "vdots", "quad", "qquad", "text", "mathrm", "mbox", "colon", "mid", "wedge", "vee", "land", "lor"];

    char Peek => pos < end ? s[pos] : '\0';
    char PeekAt(int k) => pos + k < end ? s[pos + k] : '\0';

    void SkipSpaces() { while (pos < end && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n')) pos++; }

    /// <summary>The letters of the command at <see cref="pos"/> (which is a backslash), or "" if none.</summary>
    string CommandNameAt(int at)
    {
        int k = at + 1;
        while (k < end && char.IsAsciiLetter(s[k])) k++;
        return s.Substring(at + 1, k - at - 1);
    }

    Expr? ParseSum()
    {
        if (++depth > MaxDepth) return null;
        SkipSpaces();
        var left = ParseProduct();
        while (left is not null)
        {
            SkipSpaces();
            char c = Peek;
            if (c == '+') { pos++; var r = ParseProduct(); left = r is null ? null : Expr.Binary(Op.Add, left, r); }
            else if (c == '-') { pos++; var r = ParseProduct(); left = r is null ? null : Expr.Binary(Op.Sub, left, r); }
            else break;
        }
        depth--;
        return left;
    }

    Expr? ParseProduct()
    {
        var left = ParseSigned();
        while (left is not null)
        {
            SkipSpaces();
            char c = Peek;
            if (c == '*' && PeekAt(1) != '*') { pos++; var r = ParseSigned(); left = r is null ? null : Expr.Binary(Op.Mul, left, r); }
            else if (c == '/') { pos++; var r = ParseSigned(); left = r is null ? null : Expr.Binary(Op.Div, left, r); }
            else if (c == '\\')
            {
                var name = CommandNameAt(pos);
                if (name is "times" or "cdot" or "ast")
                {
                    pos += 1 + name.Length; var r = ParseSigned(); left = r is null ? null : Expr.Binary(Op.Mul, left, r);
                }
                else if (name == "div")
                {
                    pos += 4; var r = ParseSigned(); left = r is null ? null : Expr.Binary(Op.Div, left, r);
                }
                else if (StartsOperand()) { var r = ParsePower(); left = r is null ? null : Expr.Binary(Op.Mul, left, r); }
                else break;
            }
            else if (StartsOperand()) { var r = ParsePower(); left = r is null ? null : Expr.Binary(Op.Mul, left, r); }
            else break;
        }
        return left;
    }

    /// <summary>Whether the text at <see cref="pos"/> can start an operand of an implicit multiplication.</summary>
    bool StartsOperand()
    {
        char c = Peek;
        if (char.IsAsciiDigit(c) || char.IsAsciiLetter(c) || c == '(' || c == '{' || c == '[') return true;
        if (c == '.' && char.IsAsciiDigit(PeekAt(1))) return true;
        if (c == '\\')
        {
            var name = CommandNameAt(pos);
            return name.Length > 0 && !NonOperands.Contains(name);
        }
        return false;
    }

    Expr? ParseSigned()
    {
        SkipSpaces();
        if (Peek == '-') { pos++; var a = ParseSigned(); return a is null ? null : Expr.Unary(Op.Neg, a); }
        if (Peek == '+') { pos++; return ParseSigned(); }
        return ParsePower();
    }

    Expr? ParsePower()
    {
        var b = ParseAtom();
        if (b is null) return null;
        while (true)
        {
            int save = pos;
            SkipSpaces();
            if (Peek == '!' && PeekAt(1) != '=') { pos++; b = Expr.Unary(Op.Fact, b); continue; }
            if (Peek == '^' || (Peek == '*' && PeekAt(1) == '*'))
            {
                pos += Peek == '^' ? 1 : 2;
                var e = ParseExponent();
                if (e is null) return null;
                b = Expr.Binary(Op.Pow, b, e);
                continue;
            }
            pos = save;
            return b;
        }
    }

    Expr? ParseExponent()
    {
        SkipSpaces();
        char c = Peek;
        if (c == '-') { pos++; var a = ParseExponent(); return a is null ? null : Expr.Unary(Op.Neg, a); }
        if (c == '+') { pos++; return ParseExponent(); }
        if (c == '{' || c == '(') return ParsePowerOf(ParseAtom());
        if (char.IsAsciiDigit(c)) return ParsePowerOf(ParseNumber());
        if (char.IsAsciiLetter(c)) return ParsePowerOf(ParseLetterOperand());
        if (c == '\\') return ParsePowerOf(ParseAtom());
        return null;
    }

    /// <summary>Right-associative tower: in 2^3^2 the exponent 3 takes its own exponent.</summary>
    Expr? ParsePowerOf(Expr? b)
    {
        if (b is null) return null;
        SkipSpaces();
        if (Peek == '^') { pos++; var e = ParseExponent(); return e is null ? null : Expr.Binary(Op.Pow, b, e); }
        return b;
    }

    Expr? ParseAtom()
    {
        if (++depth > MaxDepth) return null;
        var r = ParseAtomCore();
        depth--;
        return r;
    }

    Expr? ParseAtomCore()
    {
        SkipSpaces();
        char c = Peek;
        if (char.IsAsciiDigit(c) || (c == '.' && char.IsAsciiDigit(PeekAt(1)))) return ParseNumber();
        if (char.IsAsciiLetter(c)) return ParseLetterOperand();
        switch (c)
        {
            case '(': return ParseGroup('(', ')');
            case '[': return ParseGroup('[', ']');
            case '{': return ParseGroup('{', '}');
            case '|':
            {
                pos++;
                var inner = ParseSum();
                SkipSpaces();
                if (inner is null || Peek != '|') return null;
                pos++;
                return Expr.Unary(Op.Abs, inner);
            }
            case '\\': return ParseCommand();
            default: return null;
        }
    }

    Expr? ParseGroup(char open, char close)
    {
        pos++; // open
        var inner = ParseSum();
        SkipSpaces();
        if (inner is null || Peek != close) return null;
        pos++;
        return inner;
    }

    Expr? ParseNumber()
    {
        int start = pos;
        while (pos < end && char.IsAsciiDigit(s[pos])) pos++;
        if (pos < end && s[pos] == '.' && pos + 1 < end && char.IsAsciiDigit(s[pos + 1]))
        {
            pos++;
            while (pos < end && char.IsAsciiDigit(s[pos])) pos++;
        }
        else if (pos < end && s[pos] == '.' && pos > start && !(pos + 1 < end && s[pos + 1] == '.'))
        {
            pos++; // "3." is 3
        }
        // Scientific notation: 4.5e33, 1e-5, 2.2E+3.
        if (pos < end && (s[pos] == 'e' || s[pos] == 'E'))
        {
            int k = pos + 1;
            if (k < end && (s[k] == '+' || s[k] == '-')) k++;
            if (k < end && char.IsAsciiDigit(s[k]))
            {
                while (k < end && char.IsAsciiDigit(s[k])) k++;
                pos = k;
            }
        }
        if (pos < end && s[pos] == '_') return null; // 52_8: a number in another base
        if (!double.TryParse(s.AsSpan(start, pos - start), System.Globalization.NumberStyles.Float,
                System.Globalization.CultureInfo.InvariantCulture, out double v))
            return null;
        return Expr.Number(v);
    }

    /// <summary>A letter: a function word (sin, ln, sqrt …), pi, or a one-letter variable with subscript/primes.
    /// A run of three or more letters that is none of these is a word, not math: null.</summary>
    Expr? ParseLetterOperand()
    {
        int k = pos;
        while (k < end && char.IsAsciiLetter(s[k])) k++;
        var run = s.AsSpan(pos, k - pos);
        if (run.Length >= 2)
        {
            var word = run.ToString();
            if (Functions.Contains(word)) { pos = k; return ParseFunction(word); }
            if (word == "sqrt") { pos = k; var arg = ParseFunctionArgument(); return arg is null ? null : MakeSqrt(arg); }
            if (word == "pi") { pos = k; return Expr.Constant(new Complex(Math.PI, 0)); }
            if (run.Length >= 3) return null;
        }
        char c = s[pos++];
        var name = c.ToString();
        if (TryReadSubscript(out var sub)) name += "_" + sub;
        while (pos < end && s[pos] == '\'') { name += "'"; pos++; }
        if (name == "e") return Expr.Constant(new Complex(Math.E, 0));
        if (name == "i") return Expr.Constant(Complex.ImaginaryOne);
        return Expr.Variable(name);
    }

    static Expr MakeSqrt(Expr arg) => Expr.Unary(Op.Func, arg, "sqrt");

    /// <summary>Reads <c>_x</c>, <c>_{…}</c> or <c>_\alpha</c> after a name; the subscript text without spaces or braces.</summary>
    bool TryReadSubscript(out string sub)
    {
        sub = "";
        if (Peek != '_') return false;
        int save = pos;
        pos++;
        if (Peek == '{')
        {
            int close = MatchingBrace(pos);
            if (close < 0) { pos = save; return false; }
            sub = new string(s.AsSpan(pos + 1, close - pos - 1).ToArray().Where(ch => ch != ' ' && ch != '{' && ch != '}').ToArray());
            sub = sub.Replace("\\text", "").Replace("\\mathrm", "");
            pos = close + 1;
            return true;
        }
        if (Peek == '\\')
        {
            var n = CommandNameAt(pos);
            if (n.Length == 0) { pos = save; return false; }
            sub = n; pos += 1 + n.Length;
            return true;
        }
        if (char.IsAsciiLetterOrDigit(Peek)) { sub = Peek.ToString(); pos++; return true; }
        pos = save;
        return false;
    }

    int MatchingBrace(int open)
    {
        int d = 0;
        for (int k = open; k < end; k++)
        {
            if (s[k] == '{') d++;
            else if (s[k] == '}' && --d == 0) return k;
        }
        return -1;
    }

    Expr? ParseCommand()
    {
        var name = CommandNameAt(pos);
        if (name.Length == 0) return null; // \{ \\ \, … are not operands
        pos += 1 + name.Length;
        switch (name)
        {
            case "frac" or "dfrac" or "tfrac" or "cfrac":
            {
                var a = ParseArgument(); var b = a is null ? null : ParseArgument();
                return b is null ? null : Expr.Binary(Op.Div, a!, b);
            }
            case "binom" or "dbinom" or "tbinom":
            {
                var a = ParseArgument(); var b = a is null ? null : ParseArgument();
                return b is null ? null : Expr.Binary(Op.Binom, a!, b);
            }
            case "sqrt":
            {
                SkipSpaces();
                Expr? index = null;
                if (Peek == '[')
                {
                    index = ParseGroup('[', ']');
                    if (index is null) return null;
                }
                var x = ParseArgument();
                if (x is null) return null;
                return index is null ? MakeSqrt(x) : Expr.Binary(Op.Root, index, x);
            }
            case "pi": return Expr.Constant(new Complex(Math.PI, 0));
            case "infty" or "infin": return Expr.Constant(new Complex(double.PositiveInfinity, 0));
            case "lfloor": return ParseDelimited(Op.Floor, "rfloor");
            case "lceil": return ParseDelimited(Op.Ceil, "rceil");
            case "exp": return ParseFunction("exp");
            case "operatorname":
            {
                SkipSpaces();
                if (Peek != '{') return null;
                int close = MatchingBrace(pos);
                if (close < 0) return null;
                var fname = s.Substring(pos + 1, close - pos - 1).Trim();
                pos = close + 1;
                return Functions.Contains(fname) ? ParseFunction(fname) : Expr.Variable("op:" + fname);
            }
            case "vec" or "hat" or "bar" or "dot" or "ddot" or "tilde" or "overline" or "mathbf" or "mathbb" or "mathcal":
            {
                SkipSpaces();
                string inner;
                if (Peek == '{')
                {
                    int close = MatchingBrace(pos);
                    if (close < 0) return null;
                    inner = s.Substring(pos + 1, close - pos - 1).Replace(" ", "");
                    pos = close + 1;
                }
                else if (char.IsAsciiLetter(Peek)) { inner = Peek.ToString(); pos++; }
                else return null;
                var vname = name + "(" + inner + ")";
                if (TryReadSubscript(out var sub2)) vname += "_" + sub2;
                return Expr.Variable(vname);
            }
        }
        if (name == "log")
        {
            SkipSpaces();
            if (Peek == '_')
            {
                pos++;
                var baseExpr = ParseArgument();
                if (baseExpr is null || baseExpr.HasVars) return null;
                var bv = baseExpr.Eval(0).Real;
                return ParseFunction("log_" + bv.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
            }
            return ParseFunction("log");
        }
        if (Functions.Contains(name)) return ParseFunction(name);
        if (NonOperands.Contains(name)) return null;
        // Greek letters and any other symbol command: a variable named after it.
        var vn = "\\" + name;
        if (TryReadSubscript(out var subscript)) vn += "_" + subscript;
        while (pos < end && s[pos] == '\'') { vn += "'"; pos++; }
        return Expr.Variable(vn);
    }

    Expr? ParseDelimited(Op op, string closer)
    {
        var inner = ParseSum();
        SkipSpaces();
        if (inner is null || Peek != '\\' || CommandNameAt(pos) != closer) return null;
        pos += 1 + closer.Length;
        return Expr.Unary(op, inner);
    }

    /// <summary>An argument of \frac, \sqrt, \binom: a braced group, or one digit, one letter, or one command.</summary>
    Expr? ParseArgument()
    {
        SkipSpaces();
        char c = Peek;
        if (c == '{') return ParseGroup('{', '}');
        if (char.IsAsciiDigit(c)) { pos++; return Expr.Number(c - '0'); }
        if (char.IsAsciiLetter(c))
        {
            pos++;
            return c == 'e' ? Expr.Constant(new Complex(Math.E, 0)) : c == 'i' ? Expr.Constant(Complex.ImaginaryOne) : Expr.Variable(c.ToString());
        }
        if (c == '\\') return ParseAtom();
        return null;
    }

    /// <summary>A function application: <c>\sin x</c>, <c>\sin(2t)</c>, <c>\sin^2 x</c>, <c>\ln 2</c>.</summary>
    Expr? ParseFunction(string name)
    {
        SkipSpaces();
        Expr? power = null;
        if (Peek == '^')
        {
            pos++;
            power = ParseExponent();
            if (power is null) return null;
            SkipSpaces();
        }
        var arg = ParseFunctionArgument();
        if (arg is null) return null;
        var f = Expr.Unary(Op.Func, arg, name);
        return power is null ? f : Expr.Binary(Op.Pow, f, power);
    }

    /// <summary>A parenthesised group, or a product of operands up to the next + - or function name.</summary>
    Expr? ParseFunctionArgument()
    {
        SkipSpaces();
        if (Peek == '(' || Peek == '{' || Peek == '[') return ParsePower();
        if (Peek == '-') { pos++; var a = ParseFunctionArgument(); return a is null ? null : Expr.Unary(Op.Neg, a); }
        var left = ParsePower();
        while (left is not null)
        {
            SkipSpaces();
            if (!StartsOperand() || StartsFunction()) break;
            var r = ParsePower();
            left = r is null ? null : Expr.Binary(Op.Mul, left, r);
        }
        return left;
    }

    bool StartsFunction()
    {
        if (Peek == '\\') return Functions.Contains(CommandNameAt(pos));
        int k = pos;
        while (k < end && char.IsAsciiLetter(s[k])) k++;
        return k - pos >= 2 && Functions.Contains(s.Substring(pos, k - pos));
    }
}
