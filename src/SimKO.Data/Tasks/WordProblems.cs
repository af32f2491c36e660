using System.Globalization;
using System.Text;
using SimKO.Data.Answers;

namespace SimKO.Data.Tasks;

/// <summary>Settings of <see cref="WordProblemTask"/>.</summary>
public sealed record WordProblemSettings
{
    /// <summary>Operations after the starting amount (1–4); more steps, longer chains. Default 2.</summary>
    public int Steps { get; init; } = 2;
    /// <summary>Largest number in a question (2–99). Default 12.</summary>
    public int MaxNumber { get; init; } = 12;
    /// <summary>Whether "splits into n equal parts" may leave a fraction (answers like <c>\frac{7}{2}</c> or <c>3.5</c>).
    /// Default true: the math grader's fraction/decimal equivalence is then exercised end to end.</summary>
    public bool AllowFractions { get; init; } = true;
    /// <summary>Largest intermediate or final value (numerator for fractions). Default 999.</summary>
    public int MaxValue { get; init; } = 999;
    /// <summary>Share of the problem space (by a stable hash of the question) that is test, in 1/1000. Default 100.</summary>
    public int TestPerMille { get; init; } = 100;
    /// <summary>Problems returned by <see cref="WordProblemTask.Generate"/> when no count is given: train. Default 5000.</summary>
    public int DefaultTrainCount { get; init; } = 5000;
    /// <summary>Same for test. Default 200.</summary>
    public int DefaultTestCount { get; init; } = 200;

    /// <summary>The documented defaults.</summary>
    public static readonly WordProblemSettings Default = new();

    /// <summary>Every problem with these settings at once (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        if (Steps is < 1 or > 4) e.Add($"Steps = {Steps}: must be 1 to 4");
        if (MaxNumber is < 2 or > 99) e.Add($"MaxNumber = {MaxNumber}: must be 2 to 99");
        if (MaxValue < 10 || MaxValue > 99_999) e.Add($"MaxValue = {MaxValue}: must be 10 to 99999");
        if (MaxValue < MaxNumber) e.Add($"MaxValue = {MaxValue} is below MaxNumber = {MaxNumber}");
        if (TestPerMille is < 1 or > 999) e.Add($"TestPerMille = {TestPerMille}: must be 1 to 999");
        if (DefaultTrainCount < 0) e.Add($"DefaultTrainCount = {DefaultTrainCount}: must be at least 0");
        if (DefaultTestCount < 0) e.Add($"DefaultTestCount = {DefaultTestCount}: must be at least 0");
        return e;
    }
}

/// <summary>One operation of a word problem.</summary>
/// <param name="Op">'+', '-', '*' or '/'.</param>
/// <param name="Operand">The number it uses.</param>
public readonly record struct WordStep(char Op, int Operand);

/// <summary>What a word problem carries: the starting amount, the operations, and the exact answer.</summary>
public sealed record WordProblemPayload(int Start, WordStep[] Steps, Rational Answer);

/// <summary>
/// Short arithmetic word problems with a <c>\boxed{}</c> answer, e.g. "Ann has 7 pens. Ann buys 5 more. Ann gives
/// away 3. How many pens does Ann have now?" → <c>7+5=12. 12-3=9. \boxed{9}</c>. Correct responses vary (operand
/// order of + and ×, shown work or not, <c>\frac{7}{2}</c> / <c>7/2</c> / <c>3.5</c> for fractions), so pass@k is
/// meaningful; the verifier is the math grader (<see cref="MathVerifier"/>, answer required in <c>\boxed{}</c>),
/// which is thereby exercised end to end. Prompt: the question and a newline.
/// </summary>
public sealed class WordProblemTask : IBuiltinTask
{
    static readonly string[] Names = ["Ann", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Ivy", "Jo", "Kim", "Lea", "Max", "Ned", "Ola", "Pam", "Roy", "Sam", "Tia", "Uma", "Val", "Wes", "Zoe"];
    static readonly string[] Countables = ["apples", "pens", "books", "coins", "cards", "eggs", "shells", "stamps", "beads", "marbles"];
    static readonly string[] Measures = ["liters of milk", "kg of rice", "meters of rope", "cups of flour"];
    static readonly string[] AddVerbs = ["buys {0} more", "finds {0} more", "gets {0} more"];
    static readonly string[] SubVerbs = ["gives away {0}", "loses {0}", "sells {0}"];
    static readonly string[] MulVerbs = ["gets {0} times as many", "multiplies them by {0}"];
    static readonly string[] DivVerbs = ["splits them into {0} equal parts and keeps one", "shares them equally among {0} friends, keeping one share"];

    static readonly MathVerifier BoxedMath = new(new MathVerifierSettings(RequireMarker: true));

    /// <summary>The settings this task was built with.</summary>
    public WordProblemSettings Settings { get; }

    /// <exception cref="ArgumentException">Invalid settings (all problems listed).</exception>
    public WordProblemTask(WordProblemSettings? settings = null, string name = "wordmath")
    {
        Settings = settings ?? WordProblemSettings.Default;
        var errors = Settings.Validate();
        if (errors.Count > 0) throw new ArgumentException($"invalid word-problem settings: {string.Join("; ", errors)}", nameof(settings));
        Name = name;
        var texts = new List<string> { "0123456789+-*/=.\\boxed{}frac \n?", "has", "How many", "does", "have now" };
        texts.AddRange(Names); texts.AddRange(Countables); texts.AddRange(Measures);
        texts.AddRange(AddVerbs); texts.AddRange(SubVerbs); texts.AddRange(MulVerbs); texts.AddRange(DivVerbs);
        Alphabet = Generation.AlphabetOf(texts);
        int digits = Settings.MaxValue.ToString(CultureInfo.InvariantCulture).Length;
        int numDigits = Settings.MaxNumber.ToString(CultureInfo.InvariantCulture).Length;
        // Work line "a/b*n=c/d. " with fractions, then "\boxed{\frac{a}{b}}".
        int value = 2 * digits + 1;
        MaxResponseLength = Settings.Steps * (value + 1 + numDigits + 1 + value + 2) + "\\boxed{\\frac{}{}}".Length + 2 * digits;
        int longestVerb = AddVerbs.Concat(SubVerbs).Concat(MulVerbs).Concat(DivVerbs).Max(v => v.Length) + numDigits;
        int longestName = Names.Max(n => n.Length), longestItem = Countables.Concat(Measures).Max(i => i.Length);
        MaxPromptLength = (longestName + " has ".Length + numDigits + 1 + longestItem + 2)
            + Settings.Steps * (longestName + 1 + longestVerb + 2)
            + "How many  does  have now?\n".Length + longestItem + longestName;
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
    public IVerifier Verifier => BoxedMath;

    /// <inheritdoc/>
    public int? SplitSize(Split split) => null;

    /// <inheritdoc/>
    /// <remarks>Without a count: <see cref="WordProblemSettings.DefaultTrainCount"/> or <see cref="WordProblemSettings.DefaultTestCount"/>.</remarks>
    public IReadOnlyList<Problem> Generate(Split split, int seed, int? count = null) =>
        Generation.Distinct(split, seed, count ?? (split == Split.Train ? Settings.DefaultTrainCount : Settings.DefaultTestCount),
            Settings.TestPerMille, Draw, Name);

    /// <inheritdoc/>
    public string Prompt(Problem problem) => problem.Question + "\n";

    Problem Draw(Random rng)
    {
        while (true)
        {
            var name = Names[rng.Next(Names.Length)];
            bool measure = Settings.AllowFractions && rng.Next(3) == 0;
            var item = measure ? Measures[rng.Next(Measures.Length)] : Countables[rng.Next(Countables.Length)];
            int start = rng.Next(2, Settings.MaxNumber + 1);
            var value = Rational.Of(start);
            var steps = new WordStep[Settings.Steps];
            var sb = new StringBuilder();
            sb.Append(CultureInfo.InvariantCulture, $"{name} has {start} {item}.");
            bool ok = true;
            for (int j = 0; j < steps.Length && ok; j++)
            {
                char op = "+-*/"[rng.Next(4)];
                int n = op is '*' or '/' ? rng.Next(2, Math.Min(Settings.MaxNumber, 9) + 1) : rng.Next(1, Settings.MaxNumber + 1);
                Rational.TryApply(value, op, Rational.Of(n), out var next);
                if (next.Num <= 0 || next.Num > Settings.MaxValue || next.Den > 99 || (!measure && !next.IsInteger)) { ok = false; break; }
                var verbs = op switch { '+' => AddVerbs, '-' => SubVerbs, '*' => MulVerbs, _ => DivVerbs };
                sb.Append(' ').Append(name).Append(' ').Append(string.Format(CultureInfo.InvariantCulture, verbs[rng.Next(verbs.Length)], n)).Append('.');
                steps[j] = new WordStep(op, n);
                value = next;
            }
            if (!ok) continue;
            sb.Append(CultureInfo.InvariantCulture, $" How many {item} does {name} have now?");
            var payload = new WordProblemPayload(start, steps, value);
            return new Problem("", sb.ToString(), FormatAnswer(value, 0)) { Source = Name, Payload = payload };
        }
    }

    /// <summary>Formats an exact answer: 0 = \frac{a}{b} (or the integer), 1 = a/b, 2 = a decimal when it terminates within 3 places.</summary>
    static string FormatAnswer(Rational v, int style)
    {
        if (v.IsInteger) return v.Num.ToString(CultureInfo.InvariantCulture);
        if (style == 2)
        {
            decimal d = (decimal)v.Num / v.Den;
            if (decimal.Round(d, 3) * v.Den == v.Num) return decimal.Round(d, 3).ToString("0.###", CultureInfo.InvariantCulture);
            style = 0;
        }
        return style == 1 ? $"{v.Num}/{v.Den}" : $"\\frac{{{v.Num}}}{{{v.Den}}}";
    }

    static WordProblemPayload PayloadOf(Problem problem) =>
        problem.Payload as WordProblemPayload ?? throw new ArgumentException($"problem {problem.Id} is not a word problem (its payload is {problem.Payload?.GetType().Name ?? "null"})", nameof(problem));

    /// <inheritdoc/>
    public string SampleCorrect(Problem problem, Random rng) => Response(PayloadOf(problem), rng, corruptStep: -1);

    /// <inheritdoc/>
    public string SampleWrong(Problem problem, Random rng)
    {
        var p = PayloadOf(problem);
        for (int attempt = 0; attempt < 100; attempt++)
        {
            var r = Response(p, rng, corruptStep: rng.Next(p.Steps.Length));
            if (BoxedMath.Score(problem, r) == 0) return r;
        }
        // A corrupted chain that happens to land on the answer every time: change the box only.
        return $"\\boxed{{{FormatAnswer(p.Answer + Rational.Of(1 + rng.Next(3)), 0)}}}";
    }

    /// <summary>The worked chain "a op n=b. …" and the boxed answer; with <paramref name="corruptStep"/> ≥ 0 that step
    /// uses a wrong operation or is off by a little, and the error propagates.</summary>
    static string Response(WordProblemPayload p, Random rng, int corruptStep)
    {
        var sb = new StringBuilder();
        bool showWork = corruptStep >= 0 || rng.Next(5) != 0;
        var value = Rational.Of(p.Start);
        for (int j = 0; j < p.Steps.Length; j++)
        {
            var (op, n) = p.Steps[j];
            var operand = Rational.Of(n);
            Rational next;
            if (j == corruptStep)
            {
                if (rng.Next(2) == 0)
                {
                    char wrongOp = op switch { '+' => '-', '-' => '+', '*' => '+', _ => '*' };
                    Rational.TryApply(value, wrongOp, operand, out next);
                    op = wrongOp;
                }
                else
                {
                    Rational.TryApply(value, op, operand, out next);
                    next += Rational.Of(rng.Next(2) == 0 ? 1 : -1);
                }
            }
            else Rational.TryApply(value, op, operand, out next);
            if (showWork)
            {
                string a = value.ToString(), b = n.ToString(CultureInfo.InvariantCulture);
                // + and * commute: either order is a correct line.
                if (op is '+' or '*' && value.IsInteger && rng.Next(2) == 0) (a, b) = (b, a);
                sb.Append(a).Append(op).Append(b).Append('=').Append(next.ToString()).Append(". ");
            }
            value = next;
        }
        sb.Append("\\boxed{").Append(FormatAnswer(value, rng.Next(3))).Append('}');
        return sb.ToString();
    }
}
