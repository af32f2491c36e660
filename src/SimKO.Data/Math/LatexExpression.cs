using System.Globalization;

namespace SimKO.Data.Math;

/// <summary>
/// A small LaTeX arithmetic parser: <c>+ - * / ^</c> (after normalisation <c>\cdot</c>, <c>\times</c>,
/// <c>\div</c> are <c>* /</c>), <c>\frac</c>, <c>\sqrt[n]{}</c>, <c>\pi</c>, <c>e</c>, <c>\infty</c>,
/// <c>!</c>, <c>\binom</c>, elementary functions, implicit multiplication (<c>2x</c>, <c>3\sqrt{2}</c>,
/// <c>(x+1)(x-1)</c>), mixed numbers (<c>1\frac{4}{5}</c>) and scientific notation (<c>3e8</c>).
/// Letters, Greek letters and accented letters with subscripts are variables. Parsing never throws:
/// <see cref="TryParse"/> returns null for anything outside this grammar.
/// </summary>
public sealed class LatexExpression
{
    readonly Func<double[], double> _eval;

    /// <summary>Names of the free variables, in order of first appearance.</summary>
    public IReadOnlyList<string> Variables { get; }

    /// <summary>The value when there are no variables (folded at parse time).</summary>
    public double? Constant { get; }

    LatexExpression(Node node, List<string> variables)
    {
        _eval = node.F;
        Variables = variables;
        Constant = node.Const;
    }

    /// <summary>The value with <paramref name="values"/>[i] bound to <see cref="Variables"/>[i].</summary>
    public double Evaluate(double[] values) => _eval(values);

    /// <summary>Parses <paramref name="text"/> (already normalised: no <c>$</c>, <c>\left</c>, …) or returns null.</summary>
    public static LatexExpression? TryParse(string text)
    {
        if (string.IsNullOrWhiteSpace(text) || text.Length > 400 || HasWord(text)) return null;
        var p = new Parser(text);
        try
        {
            var node = p.ParseAdd();
            p.SkipSpaces();
            if (node is null || !p.AtEnd) return null;
            return new LatexExpression(node, p.Variables);
        }
        catch (ParseFailure) { return null; }
        catch (IndexOutOfRangeException) { return null; }
        catch (ArgumentOutOfRangeException) { return null; }
    }

    /// <summary>Three or more letters in a row outside a command: a word, not a product.</summary>
    static bool HasWord(string s)
    {
        int run = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '\\')
            {
                i++;
                while (i < s.Length && char.IsAsciiLetter(s[i])) i++;
                i--;
                run = 0;
            }
            else if (char.IsLetter(c)) { if (++run >= 3) return true; }
            else run = 0;
        }
        return false;
    }

    sealed class ParseFailure : Exception;

    sealed record Node(Func<double[], double> F, double? Const, bool IntLiteral = false, bool IntFraction = false)
    {
        public static Node Of(double v, bool intLiteral = false) => new(_ => v, v, intLiteral);
    }

    static readonly HashSet<string> Functions =
    [
        "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
        "ln", "log", "exp", "lg",
    ];

    static readonly HashSet<string> Greek =
    [
        "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
        "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi",
        "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega",
        "hbar", "ell",
    ];

    static readonly HashSet<string> Accents =
        ["bar", "hat", "dot", "ddot", "vec", "tilde", "overline", "mathbf", "boldsymbol", "widehat"];

    sealed class Parser(string s)
    {
        int _pos;
        readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);
        public List<string> Variables { get; } = [];

        public bool AtEnd => _pos >= s.Length;

        static ParseFailure Fail() => new();

        public void SkipSpaces() { while (_pos < s.Length && s[_pos] == ' ') _pos++; }

        char Peek() { SkipSpaces(); return _pos < s.Length ? s[_pos] : '\0'; }

        string? PeekCommand()
        {
            SkipSpaces();
            if (_pos >= s.Length || s[_pos] != '\\') return null;
            int j = _pos + 1;
            while (j < s.Length && char.IsAsciiLetter(s[j])) j++;
            return s[(_pos + 1)..j];
        }

        string ReadCommand()
        {
            int j = ++_pos;
            while (_pos < s.Length && char.IsAsciiLetter(s[_pos])) _pos++;
            if (_pos == j) throw Fail();
            return s[j.._pos];
        }

        void Expect(char c)
        {
            if (Peek() != c) throw Fail();
            _pos++;
        }

        public Node ParseAdd()
        {
            var left = ParseMul();
            while (true)
            {
                char c = Peek();
                if (c == '+') { _pos++; left = Bin(left, ParseMul(), static (a, b) => a + b); }
                else if (c == '-') { _pos++; left = Bin(left, ParseMul(), static (a, b) => a - b); }
                else return left;
            }
        }

        Node ParseMul()
        {
            var left = ParseUnary();
            while (true)
            {
                char c = Peek();
                if (c == '*') { _pos++; left = Bin(left, ParseUnary(), static (a, b) => a * b); }
                else if (c == '/') { _pos++; left = Bin(left, ParseUnary(), static (a, b) => a / b); }
                else if (StartsAtom())
                {
                    var right = ParsePower();
                    // 1\frac{4}{5} is a mixed number, as competition answers write it
                    left = left.IntLiteral && right.IntFraction && left.Const >= 0
                        ? Bin(left, right, static (a, b) => a + b)
                        : Bin(left, right, static (a, b) => a * b);
                }
                else return left;
            }
        }

        bool StartsAtom()
        {
            char c = Peek();
            if (char.IsAsciiDigit(c) || c == '.' || char.IsAsciiLetter(c) || c is '(' or '[' or '{') return true;
            if (c != '\\') return false;
            var cmd = PeekCommand();
            return cmd is not null && (cmd is "frac" or "sqrt" or "pi" or "infty" or "binom"
                || Functions.Contains(cmd) || Greek.Contains(cmd) || Accents.Contains(cmd));
        }

        Node ParseUnary()
        {
            char c = Peek();
            if (c == '-') { _pos++; var x = ParseUnary(); return Un(x, static a => -a); }
            if (c == '+') { _pos++; return ParseUnary(); }
            return ParsePower();
        }

        Node ParsePower()
        {
            var b = ParsePostfix();
            if (Peek() != '^') return b;
            _pos++;
            var e = ParseExponent();
            return Bin(b, e, System.Math.Pow);
        }

        Node ParseExponent()
        {
            char c = Peek();
            Node e;
            if (c == '{') { _pos++; e = ParseAdd(); Expect('}'); }
            else if (char.IsAsciiDigit(c)) { _pos++; e = Node.Of(c - '0', true); } // x^23 is x²·3 in LaTeX
            else if (c == '-') { _pos++; e = Un(ParseExponent(), static a => -a); return e; }
            else e = ParseAtom();
            if (Peek() == '^') { _pos++; e = Bin(e, ParseExponent(), System.Math.Pow); }
            return e;
        }

        Node ParsePostfix()
        {
            var a = ParseAtom();
            while (_pos < s.Length && s[_pos] == '!')
            {
                _pos++;
                a = Un(a, Factorial);
            }
            return a;
        }

        static double Factorial(double n)
        {
            if (n < 0 || n != System.Math.Floor(n) || n > 170) return double.NaN;
            double r = 1;
            for (int k = 2; k <= n; k++) r *= k;
            return r;
        }

        Node ParseAtom()
        {
            char c = Peek();
            if (char.IsAsciiDigit(c) || c == '.') return ParseNumber();
            if (c is '(' or '[' or '{')
            {
                _pos++;
                var inner = ParseAdd();
                Expect(c == '(' ? ')' : c == '[' ? ']' : '}');
                return inner with { IntLiteral = false, IntFraction = false };
            }
            if (c == '|')
            {
                _pos++;
                var inner = ParseAdd();
                Expect('|');
                return Un(inner, System.Math.Abs);
            }
            if (char.IsAsciiLetter(c))
            {
                _pos++;
                if (c == 'e' && !(_pos < s.Length && s[_pos] == '_')) return Node.Of(System.Math.E);
                return Variable(c.ToString());
            }
            if (c == '\\') return ParseCommand();
            throw Fail();
        }

        Node ParseNumber()
        {
            int start = _pos;
            while (_pos < s.Length && char.IsAsciiDigit(s[_pos])) _pos++;
            bool integer = true;
            if (_pos < s.Length && s[_pos] == '.')
            {
                integer = false;
                _pos++;
                while (_pos < s.Length && char.IsAsciiDigit(s[_pos])) _pos++;
            }
            // 3e8, 2.55e-10 (but not 2e^{x}: e is Euler's number there)
            if (_pos + 1 < s.Length && s[_pos] is 'e' or 'E')
            {
                int j = _pos + 1;
                if (s[j] is '+' or '-') j++;
                if (j < s.Length && char.IsAsciiDigit(s[j]))
                {
                    integer = false;
                    _pos = j;
                    while (_pos < s.Length && char.IsAsciiDigit(s[_pos])) _pos++;
                }
            }
            var text = s.AsSpan(start, _pos - start);
            if (text is "." || !double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)) throw Fail();
            return Node.Of(v, integer);
        }

        Node Variable(string name)
        {
            // subscripts and primes are part of the name: x_0, C_{1}, f'
            if (_pos < s.Length && s[_pos] == '_')
            {
                _pos++;
                name += "_" + ReadRawArgument();
            }
            while (_pos < s.Length && s[_pos] == '\'') { _pos++; name += "'"; }
            if (!_index.TryGetValue(name, out var i))
            {
                i = Variables.Count;
                _index[name] = i;
                Variables.Add(name);
            }
            return new Node(env => env[i], null);
        }

        /// <summary>A braced group or one character (or one command), as raw text.</summary>
        string ReadRawArgument()
        {
            SkipSpaces();
            if (_pos >= s.Length) throw Fail();
            if (s[_pos] == '{')
            {
                int depth = 0, start = _pos;
                for (; _pos < s.Length; _pos++)
                {
                    if (s[_pos] == '{') depth++;
                    else if (s[_pos] == '}' && --depth == 0) { _pos++; return s[(start + 1)..(_pos - 1)].Replace(" ", ""); }
                }
                throw Fail();
            }
            if (s[_pos] == '\\') return "\\" + ReadCommand();
            return s[_pos++].ToString();
        }

        /// <summary>A braced group, or one digit / letter / command atom (<c>\frac12</c>, <c>\sqrt2</c>).</summary>
        Node ParseArgument()
        {
            char c = Peek();
            if (c == '{') { _pos++; var e = ParseAdd(); Expect('}'); return e; }
            if (char.IsAsciiDigit(c)) { _pos++; return Node.Of(c - '0', true); }
            return ParseAtom();
        }

        Node ParseCommand()
        {
            var cmd = ReadCommand();
            switch (cmd)
            {
                case "pi": return Node.Of(System.Math.PI);
                case "infty": return Node.Of(double.PositiveInfinity);
                case "frac":
                {
                    var num = ParseArgument();
                    var den = ParseArgument();
                    var f = Bin(num, den, static (a, b) => a / b);
                    return f with { IntFraction = num.IntLiteral && den.IntLiteral };
                }
                case "sqrt":
                {
                    Node? index = null;
                    if (Peek() == '[') { _pos++; index = ParseAdd(); Expect(']'); }
                    var arg = ParseArgument();
                    return index is null ? Un(arg, System.Math.Sqrt) : Bin(arg, index, Root);
                }
                case "binom":
                {
                    var n = ParseArgument();
                    var k = ParseArgument();
                    return Bin(n, k, Binomial);
                }
            }
            if (Functions.Contains(cmd)) return ParseFunction(cmd);
            if (Greek.Contains(cmd)) return Variable("\\" + cmd);
            if (Accents.Contains(cmd)) return Variable("\\" + cmd + "{" + ReadRawArgument() + "}");
            throw Fail();
        }

        Node ParseFunction(string name)
        {
            Node? logBase = null;
            if (name == "log" && Peek() == '_') { _pos++; logBase = ParseArgument(); }
            Node? power = null;
            if (Peek() == '^') { _pos++; power = ParseExponent(); }
            Node arg;
            if (Peek() == '(') { _pos++; arg = ParseAdd(); Expect(')'); }
            else arg = ParsePower();
            Func<double, double> f = name switch
            {
                "sin" => System.Math.Sin, "cos" => System.Math.Cos, "tan" => System.Math.Tan,
                "sec" => static x => 1 / System.Math.Cos(x), "csc" => static x => 1 / System.Math.Sin(x),
                "cot" => static x => 1 / System.Math.Tan(x),
                "arcsin" => System.Math.Asin, "arccos" => System.Math.Acos, "arctan" => System.Math.Atan,
                "sinh" => System.Math.Sinh, "cosh" => System.Math.Cosh, "tanh" => System.Math.Tanh,
                "ln" => System.Math.Log, "log" or "lg" => System.Math.Log10, "exp" => System.Math.Exp,
                _ => throw Fail(),
            };
            var applied = logBase is null ? Un(arg, f) : Bin(arg, logBase, static (x, b) => System.Math.Log(x) / System.Math.Log(b));
            return power is null ? applied : Bin(applied, power, System.Math.Pow);
        }

        static double Root(double x, double n) =>
            x < 0 && n % 2 == 1 ? -System.Math.Pow(-x, 1 / n) : System.Math.Pow(x, 1 / n);

        static double Binomial(double n, double k)
        {
            if (k < 0 || k != System.Math.Floor(k) || n != System.Math.Floor(n) || k > n) return k > n ? 0 : double.NaN;
            double r = 1;
            for (int j = 1; j <= k; j++) r = r * (n - k + j) / j;
            return System.Math.Round(r);
        }

        static Node Un(Node a, Func<double, double> f)
        {
            if (a.Const is double c) return Node.Of(f(c));
            var fa = a.F;
            return new Node(env => f(fa(env)), null);
        }

        static Node Bin(Node a, Node b, Func<double, double, double> f)
        {
            if (a.Const is double x && b.Const is double y) return Node.Of(f(x, y));
            var fa = a.F;
            var fb = b.F;
            return new Node(env => f(fa(env), fb(env)), null);
        }
    }
}
