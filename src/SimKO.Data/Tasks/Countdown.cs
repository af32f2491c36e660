using System.Globalization;
using System.Text;

namespace SimKO.Data.Tasks;

/// <summary>
/// Settings of <see cref="CountdownTask"/>. The defaults are the CPU experiment of REPRODUCTION-NOTES: 3 numbers
/// from 1–9 (with replacement), targets 1–99 that are not among the numbers and have at least 2 correct
/// expression strings: 2,290 problems, 200 of them held out.
/// </summary>
public sealed record CountdownSettings
{
    /// <summary>How many numbers a problem gives (2–5). Default 3; 4 is the harder variant.</summary>
    public int Numbers { get; init; } = 3;
    /// <summary>Smallest number (≥ 1). Default 1.</summary>
    public int MinNumber { get; init; } = 1;
    /// <summary>Largest number (≤ 999). Default 9. Above 9 the prompt separates numbers with commas.</summary>
    public int MaxNumber { get; init; } = 9;
    /// <summary>Smallest target (≥ 0). Default 1.</summary>
    public int MinTarget { get; init; } = 1;
    /// <summary>Largest target. Default 99.</summary>
    public int MaxTarget { get; init; } = 99;
    /// <summary>Digits of the zero-padded target in the prompt (<c>017</c>). Default 3.</summary>
    public int TargetWidth { get; init; } = 3;
    /// <summary>A (numbers, target) pair is a problem when at least this many distinct expression strings reach
    /// the target. Default 2 (so that pass@k differs from pass@1).</summary>
    public int MinSolutions { get; init; } = 2;
    /// <summary>Problems held out for the test split. Default 200.</summary>
    public int TestCount { get; init; } = 200;
    /// <summary>Seed of the shuffle that picks the test problems. Default 0.</summary>
    public int SplitSeed { get; init; }

    /// <summary>The documented defaults (3 numbers).</summary>
    public static readonly CountdownSettings Default = new();
    /// <summary>The 4-number variant: numbers 1–9, targets 1–99.</summary>
    public static readonly CountdownSettings FourNumbers = new() { Numbers = 4 };

    /// <summary>Upper bound on the expressions enumerated to build the problem set.</summary>
    public const long MaxEnumeratedExpressions = 60_000_000;

    /// <summary>Every problem with these settings at once (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        if (Numbers is < 2 or > 5) e.Add($"Numbers = {Numbers}: must be 2 to 5");
        if (MinNumber < 1) e.Add($"MinNumber = {MinNumber}: must be at least 1");
        if (MaxNumber > 999) e.Add($"MaxNumber = {MaxNumber}: must be at most 999");
        if (MaxNumber < MinNumber) e.Add($"MaxNumber = {MaxNumber} is below MinNumber = {MinNumber}");
        if (MinTarget < 0) e.Add($"MinTarget = {MinTarget}: must be at least 0");
        if (MaxTarget < MinTarget) e.Add($"MaxTarget = {MaxTarget} is below MinTarget = {MinTarget}");
        if (MaxTarget > 999_999) e.Add($"MaxTarget = {MaxTarget}: must be at most 999999");
        int digits = Math.Max(MaxTarget, 0).ToString(CultureInfo.InvariantCulture).Length;
        if (TargetWidth < digits) e.Add($"TargetWidth = {TargetWidth}: MaxTarget = {MaxTarget} needs {digits} digits");
        if (MinSolutions < 1) e.Add($"MinSolutions = {MinSolutions}: must be at least 1");
        if (TestCount < 0) e.Add($"TestCount = {TestCount}: must be at least 0");
        if (e.Count == 0 && EnumerationCost() > MaxEnumeratedExpressions)
            e.Add($"the problem space needs about {EnumerationCost():N0} expression evaluations (limit {MaxEnumeratedExpressions:N0}); lower Numbers or the number range");
        return e;
    }

    /// <summary>Multisets of numbers × expressions per multiset.</summary>
    internal long EnumerationCost()
    {
        long range = MaxNumber - MinNumber + 1;
        double multisets = 1;
        for (int k = 0; k < Numbers; k++) multisets = multisets * (range + k) / (k + 1);
        long perSet = 0;
        for (int k = 2; k <= Numbers; k++)
        {
            long perms = 1;
            for (int j = 0; j < k; j++) perms *= Numbers - j;
            perSet += perms * (long)Math.Pow(4, k - 1) * CountdownTask.ShapesOf(k).Count;
        }
        return (long)Math.Min(multisets * perSet, long.MaxValue / 2);
    }
}

/// <summary>What a Countdown problem carries for its verifier and samplers.</summary>
/// <param name="Numbers">The given numbers, in prompt order (a multiset: a number may repeat).</param>
/// <param name="Target">The value to reach.</param>
/// <param name="Solutions">Every distinct correct expression string of the task's forms, sorted.</param>
public sealed record CountdownPayload(int[] Numbers, int Target, string[] Solutions);

/// <summary>
/// Countdown (as in TinyZero, scaled to a CPU): reach a target from given numbers with <c>+ - * /</c> and
/// parentheses, each given number used at most once. Expression forms of the task (and of its samples):
/// <c>a o b</c>, <c>a o b o c</c> (usual precedence), <c>(a o b) o c</c>, <c>a o (b o c)</c> — in general, for each
/// k ≥ 2 of the numbers, the flat form and every binary tree with parentheses around each inner node.
/// Evaluation is exact (fractions). Prompt: the numbers, <c>:</c>, the zero-padded target, <c>=</c>
/// (<c>575:017=</c>); response: the expression (<c>(5+7)+5</c>). The verifier accepts any well-formed
/// expression of the given numbers (also with spaces or a trailing <c>=target</c>), and rejects numbers not
/// given, a number used more often than given, division by zero, malformed text and a wrong value.
/// </summary>
public sealed class CountdownTask : IBuiltinTask, IVerifier
{
    /// <summary>The settings this task was built with.</summary>
    public CountdownSettings Settings { get; }
    readonly Lazy<(Problem[] Train, Problem[] Test)> problems;

    /// <exception cref="ArgumentException">Invalid settings (all problems listed).</exception>
    public CountdownTask(CountdownSettings? settings = null, string name = "countdown")
    {
        Settings = settings ?? CountdownSettings.Default;
        var errors = Settings.Validate();
        if (errors.Count > 0) throw new ArgumentException($"invalid Countdown settings: {string.Join("; ", errors)}", nameof(settings));
        Name = name;
        problems = new Lazy<(Problem[], Problem[])>(BuildProblems);
        bool commas = Settings.MaxNumber > 9;
        Alphabet = "0123456789+-*/():=" + (commas ? "," : "");
        int digits = Settings.MaxNumber.ToString(CultureInfo.InvariantCulture).Length;
        int n = Settings.Numbers;
        MaxResponseLength = n * digits + (n - 1) + 2 * (n - 2);
        MaxPromptLength = (commas ? n * digits + n - 1 : n) + 1 + Settings.TargetWidth + 1;
    }

    /// <inheritdoc/>
    public string Name { get; }
    /// <inheritdoc/>
    public string Alphabet { get; }
    /// <inheritdoc/>
    public int MaxPromptLength { get; }
    /// <inheritdoc/>
    public int MaxResponseLength { get; }
    /// <inheritdoc/>
    public IVerifier Verifier => this;

    /// <summary>All problems of both splits (built on first use, then cached).</summary>
    public int TotalProblems => problems.Value.Train.Length + problems.Value.Test.Length;

    /// <inheritdoc/>
    public int? SplitSize(Split split) => split == Split.Train ? problems.Value.Train.Length : problems.Value.Test.Length;

    /// <inheritdoc/>
    public IReadOnlyList<Problem> Generate(Split split, int seed, int? count = null)
    {
        var pool = split == Split.Train ? problems.Value.Train : problems.Value.Test;
        int n = count ?? pool.Length;
        if (n < 0 || n > pool.Length)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"{Name}: the {split} split has {pool.Length} problems; ask for 0 to {pool.Length}");
        return Generation.Shuffled(pool, new Random(seed)).Take(n).ToArray();
    }

    /// <inheritdoc/>
    public string Prompt(Problem problem)
    {
        var p = PayloadOf(problem);
        var numbers = Settings.MaxNumber > 9
            ? string.Join(",", p.Numbers.Select(x => x.ToString(CultureInfo.InvariantCulture)))
            : string.Concat(p.Numbers.Select(x => x.ToString(CultureInfo.InvariantCulture)));
        return $"{numbers}:{p.Target.ToString(CultureInfo.InvariantCulture).PadLeft(Settings.TargetWidth, '0')}=";
    }

    /// <inheritdoc/>
    public string SampleCorrect(Problem problem, Random rng)
    {
        var s = PayloadOf(problem).Solutions;
        return s[rng.Next(s.Length)];
    }

    /// <inheritdoc/>
    public string SampleWrong(Problem problem, Random rng)
    {
        var p = PayloadOf(problem);
        var target = Rational.Of(p.Target);
        var values = p.Numbers.Select(x => Rational.Of(x)).ToArray();
        for (int attempt = 0; attempt < 10_000; attempt++)
        {
            int k = DrawSize(rng);
            var idx = Generation.Shuffled(Enumerable.Range(0, values.Length).ToArray(), rng).Take(k).ToArray();
            var ops = new char[k - 1];
            for (int j = 0; j < ops.Length; j++) ops[j] = OpChars[rng.Next(4)];
            var shapes = ShapesOf(k);
            var shape = shapes[rng.Next(shapes.Count)];
            var vals = idx.Select(i => values[i]).ToArray();
            if (shape.TryEval(vals, ops, out var v) && v != target)
                return shape.Print(idx.Select(i => p.Numbers[i]).ToArray(), ops);
        }
        throw new InvalidOperationException($"{problem.Id}: no wrong expression found (every expression reaches the target?)");
    }

    int DrawSize(Random rng)
    {
        // Uniform over (size, numbers, operators, shape) tuples.
        var weights = new long[Settings.Numbers + 1];
        long total = 0;
        for (int k = 2; k <= Settings.Numbers; k++)
        {
            long perms = 1;
            for (int j = 0; j < k; j++) perms *= Settings.Numbers - j;
            weights[k] = perms * (long)Math.Pow(4, k - 1) * ShapesOf(k).Count;
            total += weights[k];
        }
        long r = rng.NextInt64(total);
        for (int k = 2; k <= Settings.Numbers; k++) { if (r < weights[k]) return k; r -= weights[k]; }
        return Settings.Numbers;
    }

    /// <inheritdoc/>
    public double Score(Problem problem, string completion) => Grade(problem, completion).Score;

    /// <inheritdoc/>
    public GradeResult Grade(Problem problem, string completion)
    {
        var p = PayloadOf(problem);
        var (ok, reason, text) = Check(p, completion);
        return new GradeResult(text, ok, ExtractionMethod.Task, ok ? null : reason);
    }

    /// <summary>Checks a response; the reason names the broken rule.</summary>
    internal static (bool Ok, string? Reason, string? Text) Check(CountdownPayload p, string? completion)
    {
        if (completion is null) return (false, "empty response", null);
        var text = completion.Trim();
        if (text.Length == 0) return (false, "empty response", null);
        if (text.Length > 200) return (false, "response longer than 200 characters", text);
        var compact = text.Replace(" ", "", StringComparison.Ordinal);
        int? claimed = null;
        int eq = compact.IndexOf('=');
        if (eq >= 0)
        {
            if (!int.TryParse(compact.AsSpan(eq + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var c))
                return (false, $"'{compact[(eq + 1)..]}' after '=' is not a whole number", text);
            claimed = c;
            compact = compact[..eq];
        }
        var parser = new ExpressionParser(compact);
        var tree = parser.Parse(out var error);
        if (tree is null) return (false, error, text);
        // Each given number at most as often as it is given.
        var available = p.Numbers.GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
        foreach (var n in parser.Literals)
        {
            if (!available.TryGetValue(n, out var left)) return (false, $"uses {n}, which is not given", text);
            if (left == 0) return (false, $"uses {n} more often than given", text);
            available[n] = left - 1;
        }
        if (!tree.TryEval(out var value)) return (false, "divides by zero", text);
        if (claimed is int cl && cl != p.Target) return (false, $"claims {cl} but the target is {p.Target}", text);
        if (value != Rational.Of(p.Target)) return (false, $"evaluates to {value}, not {p.Target}", text);
        return (true, null, text);
    }

    static CountdownPayload PayloadOf(Problem problem) =>
        problem.Payload as CountdownPayload ?? throw new ArgumentException($"problem {problem.Id} is not a Countdown problem (its payload is {problem.Payload?.GetType().Name ?? "null"})", nameof(problem));

    static readonly char[] OpChars = ['+', '-', '*', '/'];

    // ---- Building the problem set ----

    (Problem[] Train, Problem[] Test) BuildProblems()
    {
        int n = Settings.Numbers;
        // Everything that does not depend on the numbers, computed once: index arrangements, operator
        // combinations and shapes for each size k.
        var arrangements = new int[n + 1][][];
        var opCombos = new char[n + 1][][];
        var shapes = new IReadOnlyList<Shape>[n + 1];
        for (int k = 2; k <= n; k++)
        {
            arrangements[k] = Generation.Arrangements(n, k).ToArray();
            opCombos[k] = Enumerable.Range(0, 1 << (2 * (k - 1)))
                .Select(c => Enumerable.Range(0, k - 1).Select(j => OpChars[(c >> (2 * j)) & 3]).ToArray()).ToArray();
            shapes[k] = ShapesOf(k);
        }
        var all = new List<(int[] Numbers, int Target, string[] Solutions)>();
        var byTarget = new Dictionary<int, HashSet<(long Values, int OpsShape)>>();
        foreach (var multiset in Multisets(n, Settings.MinNumber, Settings.MaxNumber))
        {
            CollectSolutions(multiset, arrangements, opCombos, shapes, byTarget);
            foreach (var (t, set) in byTarget.OrderBy(kv => kv.Key))
            {
                if (set.Count < Settings.MinSolutions) continue;
                var strings = set.Select(key =>
                {
                    int k = (int)(key.Values >> 60);
                    var numbers = new int[k];
                    for (int j = 0; j < k; j++) numbers[j] = (int)((key.Values >> (10 * j)) & 1023);
                    return shapes[k][key.OpsShape & 0xff].Print(numbers, opCombos[k][key.OpsShape >> 8]);
                });
                all.Add((multiset, t, strings.OrderBy(x => x, StringComparer.Ordinal).ToArray()));
            }
        }
        if (Settings.TestCount >= all.Count)
            throw new ArgumentException($"Countdown settings give {all.Count} problems; TestCount = {Settings.TestCount} must be smaller");
        var order = Generation.Shuffled(Enumerable.Range(0, all.Count).ToArray(), new Random(Settings.SplitSeed));
        var test = new List<Problem>(); var train = new List<Problem>();
        for (int r = 0; r < order.Length; r++)
        {
            var (numbers, target, solutions) = all[order[r]];
            var split = r < Settings.TestCount ? Split.Test : Split.Train;
            var key = $"{string.Join(",", numbers)}:{target}";
            // Prompt order of the numbers: a fixed shuffle of the multiset, as if drawn one by one.
            var shown = Generation.Shuffled(numbers, new Random((int)(SplitHash.Hash(key) & 0x7fffffff)));
            var problem = new Problem($"{Name}/{key}",
                $"Using the numbers {string.Join(", ", shown)} (each at most once) and + - * / with parentheses, make {target}.",
                solutions[0]) { Source = Name, Payload = new CountdownPayload(shown, target, solutions) };
            (split == Split.Test ? test : train).Add(problem);
        }
        return (train.ToArray(), test.ToArray());
    }

    /// <summary>Target → the distinct correct expressions of one multiset, each as a compact key
    /// (a distinct expression string is a distinct k, numbers in order, operators and shape).</summary>
    void CollectSolutions(int[] multiset, int[][][] arrangements, char[][][] opCombos, IReadOnlyList<Shape>[] shapes,
        Dictionary<int, HashSet<(long Values, int OpsShape)>> byTarget)
    {
        byTarget.Clear();
        for (int k = 2; k < arrangements.Length; k++)
        {
            var vals = new Rational[k];
            foreach (var idx in arrangements[k])
            {
                long packed = (long)k << 60;
                for (int j = 0; j < k; j++) { vals[j] = Rational.Of(multiset[idx[j]]); packed |= (long)multiset[idx[j]] << (10 * j); }
                for (int oi = 0; oi < opCombos[k].Length; oi++)
                    for (int si = 0; si < shapes[k].Count; si++)
                    {
                        if (!shapes[k][si].TryEval(vals, opCombos[k][oi], out var v) || !v.IsInteger
                            || v.Num < Settings.MinTarget || v.Num > Settings.MaxTarget) continue;
                        int t = (int)v.Num;
                        if (Array.IndexOf(multiset, t) >= 0) continue;
                        if (!byTarget.TryGetValue(t, out var set)) byTarget[t] = set = [];
                        set.Add((packed, (oi << 8) | si));
                    }
            }
        }
    }

    static IEnumerable<int[]> Multisets(int n, int lo, int hi)
    {
        var a = new int[n];
        for (int j = 0; j < n; j++) a[j] = lo;
        while (true)
        {
            yield return (int[])a.Clone();
            // Next non-decreasing sequence.
            int i = n - 1;
            while (i >= 0 && a[i] == hi) i--;
            if (i < 0) yield break;
            a[i]++;
            for (int j = i + 1; j < n; j++) a[j] = a[i];
        }
    }

    // ---- Expression shapes ----

    static readonly Dictionary<int, IReadOnlyList<Shape>> ShapeCache = new();

    /// <summary>The forms with k operands: for k = 2 only <c>a o b</c>; above, the flat form and every fully
    /// parenthesised binary tree.</summary>
    internal static IReadOnlyList<Shape> ShapesOf(int k)
    {
        lock (ShapeCache)
        {
            if (ShapeCache.TryGetValue(k, out var cached)) return cached;
            var list = new List<Shape>();
            if (k > 2) list.Add(new Shape(null));
            foreach (var t in Trees(0, k)) list.Add(new Shape(t));
            return ShapeCache[k] = list;
        }
    }

    /// <summary>Binary trees over leaves [from, to); inner nodes numbered later, left to right.</summary>
    static IEnumerable<Node> Trees(int from, int to)
    {
        if (to - from == 1) { yield return new Node(from, null, null); yield break; }
        for (int mid = from + 1; mid < to; mid++)
            foreach (var l in Trees(from, mid))
                foreach (var r in Trees(mid, to))
                    yield return new Node(-1, l, r);
    }

    /// <summary>A leaf (operand index) or an inner node of an expression tree.</summary>
    internal sealed record Node(int Leaf, Node? Left, Node? Right);

    /// <summary>A flat form (Tree = null) or a binary tree; operators are numbered left to right as written.</summary>
    internal sealed class Shape(Node? tree)
    {
        public bool TryEval(Rational[] v, char[] ops, out Rational result)
        {
            if (tree is null) return TryEvalFlat(v, ops, out result);
            int opIndex = 0;
            return TryEvalTree(tree, v, ops, ref opIndex, out result);
        }

        static bool TryEvalFlat(Rational[] v, char[] ops, out Rational result)
        {
            // Usual precedence: * and / bind before + and -, all left-associative.
            Rational sum = Rational.Of(0), term = v[0];
            char sign = '+';
            for (int j = 0; j < ops.Length; j++)
            {
                char o = ops[j];
                if (o is '*' or '/')
                {
                    if (!Rational.TryApply(term, o, v[j + 1], out term)) { result = default; return false; }
                }
                else
                {
                    sum = sign == '+' ? sum + term : sum - term;
                    sign = o; term = v[j + 1];
                }
            }
            result = sign == '+' ? sum + term : sum - term;
            return true;
        }

        static bool TryEvalTree(Node n, Rational[] v, char[] ops, ref int opIndex, out Rational result)
        {
            if (n.Leaf >= 0) { result = v[n.Leaf]; return true; }
            if (!TryEvalTree(n.Left!, v, ops, ref opIndex, out var a)) { result = default; return false; }
            char o = ops[opIndex++];
            if (!TryEvalTree(n.Right!, v, ops, ref opIndex, out var b)) { result = default; return false; }
            return Rational.TryApply(a, o, b, out result);
        }

        public string Print(int[] numbers, char[] ops)
        {
            var sb = new StringBuilder();
            if (tree is null)
            {
                for (int j = 0; j < numbers.Length; j++)
                {
                    if (j > 0) sb.Append(ops[j - 1]);
                    sb.Append(numbers[j].ToString(CultureInfo.InvariantCulture));
                }
                return sb.ToString();
            }
            int opIndex = 0;
            PrintTree(tree, numbers, ops, ref opIndex, sb, root: true);
            return sb.ToString();
        }

        static void PrintTree(Node n, int[] numbers, char[] ops, ref int opIndex, StringBuilder sb, bool root)
        {
            if (n.Leaf >= 0) { sb.Append(numbers[n.Leaf].ToString(CultureInfo.InvariantCulture)); return; }
            if (!root) sb.Append('(');
            PrintTree(n.Left!, numbers, ops, ref opIndex, sb, false);
            sb.Append(ops[opIndex++]);
            PrintTree(n.Right!, numbers, ops, ref opIndex, sb, false);
            if (!root) sb.Append(')');
        }
    }

    // ---- Parsing responses ----

    /// <summary>expr := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*; factor := number | '(' expr ')'.
    /// Numbers are decimal integers without leading zeros; no unary minus.</summary>
    sealed class ExpressionParser(string s)
    {
        int pos;
        public readonly List<int> Literals = [];
        string? error;

        public Tree? Parse(out string? err)
        {
            var t = Expr(0);
            if (t is not null && pos != s.Length) { Fail($"unexpected '{s[pos]}' at position {pos + 1}"); t = null; }
            err = error;
            return t;
        }

        Tree? Fail(string message) { error ??= message; return null; }

        Tree? Expr(int depth)
        {
            if (depth > 50) return Fail("too deeply nested");
            var left = Term(depth);
            while (left is not null && pos < s.Length && (s[pos] == '+' || s[pos] == '-'))
            {
                char op = s[pos++];
                var right = Term(depth);
                left = right is null ? null : new Tree(op, left, right, default);
            }
            return left;
        }

        Tree? Term(int depth)
        {
            var left = Factor(depth);
            while (left is not null && pos < s.Length && (s[pos] == '*' || s[pos] == '/'))
            {
                char op = s[pos++];
                var right = Factor(depth);
                left = right is null ? null : new Tree(op, left, right, default);
            }
            return left;
        }

        Tree? Factor(int depth)
        {
            if (pos >= s.Length) return Fail("ends where a number or '(' is expected");
            char c = s[pos];
            if (c == '(')
            {
                pos++;
                var inner = Expr(depth + 1);
                if (inner is null) return null;
                if (pos >= s.Length || s[pos] != ')') return Fail($"missing ')' at position {pos + 1}");
                pos++;
                return inner;
            }
            if (char.IsAsciiDigit(c))
            {
                int start = pos;
                while (pos < s.Length && char.IsAsciiDigit(s[pos])) pos++;
                if (pos - start > 1 && s[start] == '0') return Fail($"number with a leading zero at position {start + 1}");
                if (pos - start > 6) return Fail($"number too long at position {start + 1}");
                int n = int.Parse(s.AsSpan(start, pos - start), NumberStyles.None, CultureInfo.InvariantCulture);
                Literals.Add(n);
                return new Tree('n', null, null, Rational.Of(n));
            }
            return Fail($"expected a number or '(' at position {pos + 1}, found '{c}'");
        }
    }

    sealed record Tree(char Op, Tree? Left, Tree? Right, Rational Value)
    {
        public bool TryEval(out Rational r)
        {
            if (Op == 'n') { r = Value; return true; }
            if (!Left!.TryEval(out var a) || !Right!.TryEval(out var b)) { r = default; return false; }
            return Rational.TryApply(a, Op, b, out r);
        }
    }
}
