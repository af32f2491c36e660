using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using SimKO.Data.Sandbox;

namespace SimKO.Data.Tasks;

/// <summary>Size of the program-synthesis task: f(x) = a·x² + b·x + c with a in 0..MaxSquare, b and c in
/// −MaxCoefficient..MaxCoefficient (not both a and b zero), shown at <c>Examples</c> points and checked at
/// <c>HiddenTests</c> more, all distinct in 0..MaxX; the split sizes and seed.</summary>
public sealed record ProgramSettings(
    int MaxSquare = 3, int MaxCoefficient = 9, int MaxX = 9, int Examples = 3, int HiddenTests = 2,
    int TrainProblems = 1000, int TestProblems = 100, int TestPerMille = 100, int Seed = 1234, bool ShownFromZero = true)
{
    public List<string> Validate()
    {
        var p = new List<string>();
        if (MaxSquare is < 0 or > 9) p.Add($"max_square must be 0..9, got {MaxSquare}");
        if (MaxCoefficient is < 1 or > 9) p.Add($"max_coefficient must be 1..9 (one digit), got {MaxCoefficient}");
        if (MaxX is < 2 or > 9) p.Add($"max_x must be 2..9, got {MaxX}");
        if (Examples is < 1 or > 6) p.Add($"examples must be 1..6, got {Examples}");
        if (HiddenTests is < 0 or > 6) p.Add($"hidden_tests must be 0..6, got {HiddenTests}");
        if (Examples + HiddenTests < 3) p.Add($"examples + hidden_tests must be >= 3 (a quadratic needs three points to be pinned), got {Examples + HiddenTests}");
        if (Examples + HiddenTests > MaxX + 1) p.Add($"examples + hidden_tests ({Examples + HiddenTests}) must fit in the {MaxX + 1} points 0..max_x");
        if (TrainProblems < 1 || TestProblems < 1) p.Add($"train/test problems must be >= 1, got {TrainProblems}/{TestProblems}");
        if (TestPerMille is < 1 or > 999) p.Add($"test_per_mille must be 1..999, got {TestPerMille}");
        return p;
    }
}

/// <summary>A program-synthesis problem: the hidden function f(x) = A·x² + B·x + C, the points shown in the
/// prompt and the points only the verifier checks.</summary>
public sealed record ProgramProblem(string Id, int A, int B, int C, int[] Shown, int[] Hidden)
{
    public long Value(int x) => (long)A * x * x + (long)B * x + C;
}

/// <summary>
/// Program synthesis from input/output examples (the code task at CPU scale): prompt <c>f(1)=3 f(2)=5 f(4)=9:</c>,
/// answer a Python expression in <c>x</c> such as <c>2*x+1</c>. Every answer that computes the same function is
/// right (<c>x+x+1</c>, <c>1+2*x</c>, <c>x*2+1</c>), so pass@K means something. Each answer is verified by running
/// it in the sandbox on the shown points and on hidden ones (the unit tests), never by comparing strings; only
/// answers with characters outside digits, x, + - * ( ) are refused without running. Train and test functions are
/// disjoint by a hash of the function (a fixed share of the function space is test, whatever the seed).
/// Judging starts a sandbox pool on first use (or uses the one given); <see cref="JudgeMany"/> grades a
/// batch in parallel, and verdicts are cached by (problem, answer). Dispose to stop an own pool.
/// </summary>
public sealed class ProgramTask : IBuiltinTask<ProgramProblem>, IDisposable
{
    /// <summary>The sandbox limits used when no pool is given: an expression needs little. At least two workers,
    /// so grading overlaps the programs' start-up even where the process sees one core.</summary>
    public static readonly SandboxSettings DefaultSandbox = new(
        WallSeconds: 2, CpuSeconds: 1, MemoryMegabytes: 256, MaxProcesses: 0, MaxOutputBytes: 64 << 10, TmpMegabytes: 4,
        Workers: System.Math.Max(2, Environment.ProcessorCount));

    /// <summary>Characters an answer may use.</summary>
    public const string AnswerChars = "0123456789x+-*()";
    const int CacheLimit = 200_000;

    readonly Lazy<SandboxPool> _pool;
    readonly bool _ownPool;
    readonly ConcurrentDictionary<(string Id, string Answer), Judgement> _cache = new();

    public ProgramSettings Settings { get; }
    public string Name => "program";
    public string Alphabet => AnswerChars + "f=: ";
    public IReadOnlyList<ProgramProblem> Train { get; }
    public IReadOnlyList<ProgramProblem> Test { get; }
    public int MaxPromptLength { get; }
    /// <summary>Longest sampled correct answer (e.g. <c>(3*x**2-9*x-9)</c>); model answers may be longer.</summary>
    public int MaxAnswerLength => 16;

    public ProgramTask(ProgramSettings? settings = null, SandboxPool? pool = null)
    {
        Settings = settings ?? new ProgramSettings();
        var problems = Settings.Validate();
        if (problems.Count > 0) throw new ArgumentException("program settings: " + string.Join("; ", problems));
        _ownPool = pool is null;
        _pool = pool is null ? new Lazy<SandboxPool>(() => new SandboxPool(DefaultSandbox)) : new Lazy<SandboxPool>(pool);
        int n = Settings.MaxX, m = Settings.MaxCoefficient;
        long hi = (long)Settings.MaxSquare * n * n + (long)m * n + m, lo = -((long)m * n + m);
        int valueChars = System.Math.Max(hi.ToString(CultureInfo.InvariantCulture).Length, lo.ToString(CultureInfo.InvariantCulture).Length);
        MaxPromptLength = Settings.Examples * ("f(".Length + 1 + ")=".Length + valueChars) + (Settings.Examples - 1) + 1;
        Train = TaskSplit.Draw(Name, false, Settings.TrainProblems, Settings.Seed, Settings.TestPerMille, Draw, FunctionKey);
        Test = TaskSplit.Draw(Name, true, Settings.TestProblems, Settings.Seed, Settings.TestPerMille, Draw, FunctionKey);
    }

    /// <summary>The function a problem hides (the split key: train and test never share a function).</summary>
    public static string FunctionKey(ProgramProblem p) => $"{p.A},{p.B},{p.C}";

    public string Id(ProgramProblem p) => p.Id;

    public string Prompt(ProgramProblem p) =>
        string.Join(" ", p.Shown.Select(x => $"f({x.ToString(CultureInfo.InvariantCulture)})={p.Value(x).ToString(CultureInfo.InvariantCulture)}")) + ":";

    ProgramProblem Draw(Random rng) => Draw(rng, Settings.MaxSquare);

    /// <summary>A fresh problem of the train side of the split (its function is never a test function), at freshly
    /// drawn points, with a in 0..<paramref name="maxSquare"/> (0: a line): the warm-start's examples, drawn from the
    /// whole train function space rather than the fixed <see cref="Train"/> problems, so the base model learns to read
    /// a function off its values instead of memorising a thousand prompts.</summary>
    public ProgramProblem DrawTraining(Random rng, int maxSquare)
    {
        if (maxSquare < 0 || maxSquare > Settings.MaxSquare)
            throw new ArgumentOutOfRangeException(nameof(maxSquare), maxSquare, $"must be 0..max_square ({Settings.MaxSquare})");
        while (true)
        {
            var p = Draw(rng, maxSquare);
            if (!TaskSplit.IsTest(FunctionKey(p), Settings.TestPerMille)) return p;
        }
    }

    ProgramProblem Draw(Random rng, int maxSquare)
    {
        int m = Settings.MaxCoefficient;
        int a, b;
        do { a = rng.Next(maxSquare + 1); b = rng.Next(-m, m + 1); } while (a == 0 && b == 0);
        int c = rng.Next(-m, m + 1);
        var points = Settings.ShownFromZero
            ? Enumerable.Range(0, Settings.Examples).Concat(Enumerable.Range(Settings.Examples, Settings.MaxX + 1 - Settings.Examples).OrderBy(_ => rng.Next()).Take(Settings.HiddenTests)).ToArray()
            : Enumerable.Range(0, Settings.MaxX + 1).OrderBy(_ => rng.Next()).Take(Settings.Examples + Settings.HiddenTests).ToArray();
        var shown = points.Take(Settings.Examples).Order().ToArray();
        var hidden = points.Skip(Settings.Examples).Order().ToArray();
        var p = new ProgramProblem("", a, b, c, shown, hidden);
        return p with { Id = $"program:{FunctionKey(p)}:{string.Join("", shown)}" };
    }

    /// <summary>The Python program that checks an answer: the expression as the body of f, its values at every
    /// shown and hidden point compared with the function's; on a mismatch the AssertionError's message is the
    /// values it computed (the answer's maj@n vote).</summary>
    public static string CheckProgram(ProgramProblem p, string answer)
    {
        var xs = p.Shown.Concat(p.Hidden).ToArray();
        string List(IEnumerable<long> v) => "[" + string.Join(", ", v.Select(x => x.ToString(CultureInfo.InvariantCulture))) + "]";
        return "f = lambda x: (" + answer + "\n)\n" +
               $"got = [f(x) for x in {List(xs.Select(x => (long)x))}]\n" +
               $"assert got == {List(xs.Select(p.Value))}, ' '.join(map(str, got))\n";
    }

    /// <summary>The function's values at the shown then hidden points, as a correct answer's vote.</summary>
    static string Values(ProgramProblem p) => string.Join(" ", p.Shown.Concat(p.Hidden).Select(x => p.Value(x).ToString(CultureInfo.InvariantCulture)));

    public Judgement Judge(ProgramProblem p, string answer) => JudgeMany([(p, answer)])[0];

    /// <summary>Judges many answers at once, running the ones not already judged in parallel in the sandbox.</summary>
    public Judgement[] JudgeMany(IReadOnlyList<(ProgramProblem Problem, string Answer)> items)
    {
        var result = new Judgement[items.Count];
        var toRun = new List<int>();
        for (int i = 0; i < items.Count; i++)
        {
            var (p, raw) = items[i];
            var text = raw.Trim();
            if (_cache.TryGetValue((p.Id, text), out var known)) { result[i] = known; continue; }
            if (text.Length == 0) result[i] = new Judgement(false, "empty answer", null);
            else if (text.FirstOrDefault(ch => !AnswerChars.Contains(ch)) is var bad and not '\0')
                result[i] = new Judgement(false, $"'{bad}' is not allowed: an answer is an expression of digits, x, + - * ( )", null);
            else toRun.Add(i);
        }
        if (toRun.Count > 0)
        {
            var verdicts = _pool.Value.GradeMany(toRun.Select(i => CheckProgram(items[i].Problem, items[i].Answer.Trim())).ToArray());
            if (_cache.Count > CacheLimit) _cache.Clear();
            for (int k = 0; k < toRun.Count; k++)
            {
                var (p, raw) = items[toRun[k]];
                var r = verdicts[k];
                var j = r.Outcome switch
                {
                    Outcome.Passed => new Judgement(true, "correct", Values(p)),
                    Outcome.Failed when r.ExceptionType == "AssertionError" => new Judgement(false, $"wrong values {r.Message} (expected {Values(p)})", r.Message),
                    _ => new Judgement(false, r.Describe(), null),
                };
                if (r.Outcome != Outcome.SandboxError) _cache[(p.Id, raw.Trim())] = j;
                result[toRun[k]] = j;
            }
        }
        return result;
    }

    /// <summary>One of the expressions that compute the problem's function: terms in a random order, each
    /// written one of a few ways (<c>2*x</c>, <c>x*2</c>, <c>x+x</c>; <c>3*x*x</c>, <c>x*x*3</c>, <c>3*x**2</c>),
    /// factored as <c>x*(…)</c> when there is no constant, sometimes in parentheses.</summary>
    public string SampleCorrect(ProgramProblem p, Random rng) => Render(p.A, p.B, p.C, rng);

    /// <summary>An expression of another quadratic: one coefficient moved by 1..3. It differs from the problem's
    /// function at all but at most two points, and the verifier checks at least three, so it is always wrong.</summary>
    public string SampleWrong(ProgramProblem p, Random rng)
    {
        int a = p.A, b = p.B, c = p.C;
        int d = rng.Next(1, 4) * (rng.Next(2) == 0 ? -1 : 1);
        switch (rng.Next(3))
        {
            case 0: c += d; break;
            case 1: b += d; break;
            default: a = a + System.Math.Abs(d) <= 9 ? a + System.Math.Abs(d) : a - System.Math.Abs(d); break;
        }
        if (a == 0 && b == 0 && c == 0) c = d;
        return Render(a, b, c, rng);
    }

    /// <summary>An expression of a·x² + b·x + c (any integers, |coefficients| ≤ 12), in a random one of its written forms.</summary>
    static string Render(int a, int b, int c, Random rng)
    {
        string Num(int k) => k.ToString(CultureInfo.InvariantCulture);
        // signed terms, each "+…" or "-…"
        string Term(int k, string power)
        {
            string sign = k < 0 ? "-" : "+";
            int abs = System.Math.Abs(k);
            var forms = new List<string>();
            if (abs == 1) forms.Add(power);
            else { forms.Add($"{Num(abs)}*{power}"); forms.Add($"{power}*{Num(abs)}"); }
            if (power == "x*x") forms.AddRange(forms.Select(f => f.Replace("x*x", "x**2")).ToList());
            if (abs == 2 && power == "x") forms.Add(k < 0 ? "x-x" : "x+x");  // sign applies to the first x only: fixed below
            var f = forms[rng.Next(forms.Count)];
            if (f == "x-x" || f == "x+x") return k < 0 ? "-x-x" : "+x+x";
            return sign + f;
        }
        var terms = new List<string>();
        if (a != 0) terms.Add(Term(a, "x*x"));
        if (b != 0) terms.Add(Term(b, "x"));
        if (c == 0 && terms.Count > 0 && a != 0 && b != 0 && rng.Next(3) == 0)
        {
            // x*(a*x+b)
            var inner = Render(0, a, b, rng);
            if (inner.Length + 4 <= 16) return $"x*({inner})";
        }
        if (c != 0) terms.Add(c < 0 ? $"-{Num(-c)}" : $"+{Num(c)}");
        if (terms.Count == 0) return "0";
        var order = terms.OrderBy(_ => rng.Next()).ToList();
        var sb = new StringBuilder();
        foreach (var t in order) sb.Append(t);
        var text = sb[0] == '+' ? sb.ToString(1, sb.Length - 1) : sb.ToString();
        return text.Length + 2 <= 16 && rng.Next(6) == 0 ? $"({text})" : text;
    }

    public void Dispose()
    {
        if (_ownPool && _pool.IsValueCreated) _pool.Value.Dispose();
    }
}
