using System.Globalization;
using System.Numerics;
using System.Text;
using SimKO.Data.Math;

namespace SimKO.Data.Tasks;

/// <summary>Difficulty knobs of the arithmetic word problems: operations per problem, the largest
/// number in a question, whether a division may leave a fraction (measurable items only), the
/// largest amount along the way, and the split sizes.</summary>
public sealed record WordProblemSettings(
    int Steps = 2, int MaxNumber = 12, bool AllowFractions = true, int MaxValue = 999,
    int TrainProblems = 4000, int TestProblems = 200, int TestPerMille = 100, int Seed = 1234)
{
    public List<string> Validate()
    {
        var p = new List<string>();
        if (Steps is < 1 or > 4) p.Add($"steps must be 1..4, got {Steps}");
        if (MaxNumber is < 2 or > 99) p.Add($"max_number must be 2..99, got {MaxNumber}");
        // up to 9999 a boxed value off by one is outside the math grader's relative tolerance (1e-4)
        if (MaxValue < MaxNumber || MaxValue > 9999) p.Add($"max_value must be max_number ({MaxNumber})..9999, got {MaxValue}");
        if (TrainProblems < 1 || TestProblems < 1) p.Add($"train/test problems must be >= 1, got {TrainProblems}/{TestProblems}");
        if (TestPerMille is < 1 or > 999) p.Add($"test_per_mille must be 1..999, got {TestPerMille}");
        return p;
    }
}

/// <summary>One operation of a word problem: <c>+ - * /</c> by a whole number.</summary>
public readonly record struct WordStep(char Op, int Operand)
{
    /// <summary>The amount after this step.</summary>
    public Rational Apply(Rational value) => Op switch
    {
        '+' => value + Operand,
        '-' => value - Operand,
        '*' => value * Operand,
        '/' => value / Operand,
        _ => throw new InvalidOperationException($"unknown operation '{Op}'"),
    };
}

/// <summary>An arithmetic word problem: its text, the start amount and the operations it describes,
/// the exact answer and the reference answer string (<c>12</c> or <c>\frac{7}{2}</c>).</summary>
public sealed record WordProblem(
    string Id, string Question, string Name, string Item, bool Measurable, int Start, WordStep[] Steps,
    Rational Answer, string Reference);

/// <summary>
/// Short arithmetic word problems ("Ann has 7 pens. Ann buys 5 more. Ann gives away 3. How many pens
/// does Ann have now?") whose answer must be given in <c>\boxed{}</c>, graded by the project's math
/// grader (<see cref="MathGrader"/>): the math verifier end to end with a character-level model.
/// Names, items and sentences come from small fixed lists; the operations are + − × ÷ by numbers
/// up to MaxNumber, every amount along the way is positive and at most MaxValue, and a division leaves
/// a fraction only for measurable items ("liters of milk") and only when AllowFractions (denominators
/// up to MaxNumber). Correct answers vary: with or without the work ("7+5=12. 12-3=9. \boxed{9}"), the
/// operands of + and × in either order, a fraction as <c>\frac{7}{2}</c>, <c>7/2</c> or (when it
/// terminates) <c>3.5</c>. Train and test are disjoint by a hash of the prompt.
/// </summary>
public sealed class WordProblems : IBuiltinTask<WordProblem>
{
    static readonly string[] Names = ["Ann", "Ben", "Cara", "Dan", "Eve", "Finn", "Gail", "Hugo"];
    static readonly string[] CountableItems = ["pens", "apples", "cards", "stamps", "marbles", "books", "shells", "coins"];
    static readonly string[] MeasurableItems = ["liters of milk", "kilograms of rice", "meters of rope", "cups of flour"];

    // {0} name, {1} number, {2} item; for × and ÷ {2} is "many"/"much" and {3} "them"/"it"
    static readonly string[] StartTemplates = ["{0} has {1} {2}.", "{0} starts with {1} {2}."];
    static readonly string[] AddTemplates = ["{0} buys {1} more.", "{0} finds {1} more.", "{0} gets {1} more."];
    static readonly string[] SubTemplates = ["{0} gives away {1}.", "{0} loses {1}.", "{0} uses {1}."];
    static readonly string[] MulTemplates = ["Now {0} has {1} times as {2}.", "{0} then has {1} times as {2}."];
    static readonly string[] DivTemplates = ["{0} splits {3} into {1} equal parts and keeps one part.", "{0} shares {3} equally among {1} and keeps one share."];
    static readonly string[] QuestionTemplates = ["How many {2} does {0} have now?", "How many {2} does {0} have in the end?"];
    static readonly string[] Fillers = ["many", "much", "them", "it"];
    const string Symbols = "0123456789+-*/=. ?\n\\boxed{}frac";

    static readonly char[] Ops = ['+', '-', '*', '/'];

    public WordProblemSettings Settings { get; }
    public string Name => "wordmath";
    public string Alphabet { get; }
    public IReadOnlyList<WordProblem> Train { get; }
    public IReadOnlyList<WordProblem> Test { get; }
    public int MaxPromptLength { get; }
    public int MaxAnswerLength { get; }

    public WordProblems(WordProblemSettings? settings = null)
    {
        Settings = settings ?? new WordProblemSettings();
        var problems = Settings.Validate();
        if (problems.Count > 0) throw new ArgumentException("wordmath settings: " + string.Join("; ", problems));
        var text = string.Concat(Names) + string.Concat(CountableItems) + string.Concat(MeasurableItems)
                   + string.Concat(StartTemplates.Concat(AddTemplates).Concat(SubTemplates).Concat(MulTemplates).Concat(DivTemplates).Concat(QuestionTemplates).Select(StripPlaceholders))
                   + string.Concat(Fillers) + Symbols;
        Alphabet = new string(text.Distinct().Order().ToArray());
        MaxPromptLength = PromptBound();
        MaxAnswerLength = AnswerBound();
        Train = TaskSplit.Draw(Name, false, Settings.TrainProblems, Settings.Seed, Settings.TestPerMille, Draw, Prompt);
        Test = TaskSplit.Draw(Name, true, Settings.TestProblems, Settings.Seed, Settings.TestPerMille, Draw, Prompt);
    }

    public string Id(WordProblem p) => p.Id;

    public string Prompt(WordProblem p) => p.Question + "\n";

    static string StripPlaceholders(string template) =>
        template.Replace("{0}", "").Replace("{1}", "").Replace("{2}", "").Replace("{3}", "");

    static string Fill(string template, params object[] args) => string.Format(CultureInfo.InvariantCulture, template, args);

    static int Digits(BigInteger n) => n.ToString(CultureInfo.InvariantCulture).Length;

    /// <summary>Every sentence at its longest (longest name, item, filler and number), summed.</summary>
    int PromptBound()
    {
        var name = Names.MaxBy(s => s.Length)!;
        var item = CountableItems.Concat(MeasurableItems).MaxBy(s => s.Length)!;
        var filler = Fillers.MaxBy(s => s.Length)!;
        var number = new string('9', Digits(Settings.MaxNumber));
        int Longest(string[] templates) => templates.Max(t => Fill(t, name, number, item, filler).Length);
        int step = new[] { AddTemplates, SubTemplates, MulTemplates, DivTemplates }.Max(t => Longest(t));
        return Longest(StartTemplates) + Settings.Steps * (1 + step) + 1 + Longest(QuestionTemplates) + 1;
    }

    /// <summary>Longest amount as written in the work (<c>12</c> or <c>17/2</c>), and longest boxed content.</summary>
    int AnswerBound()
    {
        int whole = Digits(Settings.MaxValue);
        int fraction = Settings.AllowFractions ? Digits((BigInteger)Settings.MaxValue * Settings.MaxNumber) + 1 + Digits(Settings.MaxNumber) : 0;
        int work = System.Math.Max(whole, fraction);
        int boxed = whole;
        if (Settings.AllowFractions)
        {
            int numDigits = Digits((BigInteger)Settings.MaxValue * Settings.MaxNumber), denDigits = Digits(Settings.MaxNumber);
            int places = Enumerable.Range(2, Settings.MaxNumber - 1).Select(DecimalPlaces).Max();
            boxed = new[] { boxed, "\\frac{}{}".Length + numDigits + denDigits, numDigits + 1 + denDigits, whole + 1 + places }.Max();
        }
        // lines "x+y=z. " then "\boxed{…}"
        int line = 2 * work + Digits(Settings.MaxNumber) + "+=. ".Length;
        return Settings.Steps * line + "\\boxed{}".Length + boxed;
    }

    /// <summary>Decimal places of 1/d when it terminates, else 0.</summary>
    static int DecimalPlaces(int d)
    {
        int twos = 0, fives = 0;
        while (d % 2 == 0) { d /= 2; twos++; }
        while (d % 5 == 0) { d /= 5; fives++; }
        return d == 1 ? System.Math.Max(twos, fives) : 0;
    }

    WordProblem Draw(Random rng)
    {
        for (int attempt = 0; attempt < 10_000; attempt++)
        {
            var name = Names[rng.Next(Names.Length)];
            int itemIndex = rng.Next(CountableItems.Length + MeasurableItems.Length);
            bool measurable = itemIndex >= CountableItems.Length;
            var item = measurable ? MeasurableItems[itemIndex - CountableItems.Length] : CountableItems[itemIndex];
            int start = rng.Next(2, Settings.MaxNumber + 1);
            var sentences = new List<string> { Fill(StartTemplates[rng.Next(StartTemplates.Length)], name, start, item) };
            var steps = new List<WordStep>();
            Rational value = start;
            for (int s = 0; s < Settings.Steps; s++)
            {
                WordStep? chosen = null;
                for (int tries = 0; tries < 50 && chosen is null; tries++)
                {
                    char op = Ops[rng.Next(Ops.Length)];
                    var step = new WordStep(op, op is '+' or '-' ? rng.Next(1, Settings.MaxNumber + 1) : rng.Next(2, Settings.MaxNumber + 1));
                    if (Allowed(value, step, measurable)) chosen = step;
                }
                if (chosen is not WordStep st) break;
                value = st.Apply(value);
                steps.Add(st);
                var templates = st.Op switch { '+' => AddTemplates, '-' => SubTemplates, '*' => MulTemplates, _ => DivTemplates };
                sentences.Add(Fill(templates[rng.Next(templates.Length)], name, st.Operand, measurable ? "much" : "many", measurable ? "it" : "them"));
            }
            if (steps.Count < Settings.Steps) continue;
            sentences.Add(Fill(QuestionTemplates[rng.Next(QuestionTemplates.Length)], name, 0, item));
            var question = string.Join(" ", sentences);
            return new WordProblem($"wordmath:{TaskSplit.Hash(question + "\n"):x16}", question, name, item, measurable, start,
                steps.ToArray(), value, Reference(value));
        }
        throw new ArgumentException("wordmath: no problem within the settings in 10,000 attempts; widen max_value");
    }

    /// <summary>Whether a step keeps the amount positive, at most MaxValue, and whole unless a fraction is allowed.</summary>
    bool Allowed(Rational value, WordStep step, bool measurable)
    {
        var next = step.Apply(value);
        if (next.Num.Sign <= 0 || next.Num > next.Den * Settings.MaxValue) return false;
        if (next.IsInteger) return true;
        return step.Op == '/' && measurable && Settings.AllowFractions && next.Den <= Settings.MaxNumber;
    }

    /// <summary>The reference answer: <c>12</c> or <c>\frac{7}{2}</c>.</summary>
    public static string Reference(Rational value) => value.IsInteger ? Whole(value.Num) : Frac(value);

    static string Whole(BigInteger n) => n.ToString(CultureInfo.InvariantCulture);
    static string Slash(Rational v) => v.IsInteger ? Whole(v.Num) : $"{Whole(v.Num)}/{Whole(v.Den)}";
    static string Frac(Rational v) => $"\\frac{{{Whole(v.Num)}}}{{{Whole(v.Den)}}}";

    /// <summary>The value as a terminating decimal (<c>3.5</c>, <c>0.25</c>), or null when it does not terminate.</summary>
    public static string? Decimal(Rational v)
    {
        if (v.IsInteger || v.Num.Sign < 0) return null;
        var d = v.Den;
        int twos = 0, fives = 0;
        while (d.IsEven) { d /= 2; twos++; }
        while ((d % 5).IsZero) { d /= 5; fives++; }
        if (!d.IsOne) return null;
        int places = System.Math.Max(twos, fives);
        var scaled = v.Num * BigInteger.Pow(10, places) / v.Den;
        var digits = Whole(scaled).PadLeft(places + 1, '0');
        return digits[..^places] + "." + digits[^places..];
    }

    /// <summary>The forms a boxed value may take: the integer, or <c>\frac{n}{d}</c>, <c>n/d</c> and (when it terminates) the decimal.</summary>
    public static IReadOnlyList<string> Forms(Rational v)
    {
        if (v.IsInteger) return [Whole(v.Num)];
        var forms = new List<string> { Frac(v), Slash(v) };
        if (Decimal(v) is string dec) forms.Add(dec);
        return forms;
    }

    /// <summary>"x+y=z." for one step, operands of + and × in either order.</summary>
    static string Line(Rational before, WordStep step, Rational after, Random rng)
    {
        string x = Slash(before), y = step.Operand.ToString(CultureInfo.InvariantCulture);
        if (step.Op is '+' or '*' && rng.Next(2) == 0) (x, y) = (y, x);
        return $"{x}{step.Op}{y}={Slash(after)}.";
    }

    /// <summary>The work (when asked) and the boxed value in a random one of its forms.</summary>
    static string Write(IReadOnlyList<string> lines, Rational boxed, Random rng)
    {
        var forms = Forms(boxed);
        var box = $"\\boxed{{{forms[rng.Next(forms.Count)]}}}";
        return lines.Count == 0 ? box : string.Join(" ", lines) + " " + box;
    }

    public string SampleCorrect(WordProblem p, Random rng)
    {
        var lines = new List<string>();
        if (rng.Next(3) != 0)
        {
            Rational value = p.Start;
            foreach (var step in p.Steps)
            {
                var next = step.Apply(value);
                lines.Add(Line(value, step, next, rng));
                value = next;
            }
        }
        return Write(lines, p.Answer, rng);
    }

    /// <summary>A well-formed response with a wrong boxed value: an arithmetic slip in one step carried
    /// through the rest, or the last step forgotten; with or without the work.</summary>
    public string SampleWrong(WordProblem p, Random rng)
    {
        for (int attempt = 0; attempt < 50; attempt++)
        {
            var lines = new List<string>();
            Rational value = p.Start;
            bool forget = rng.Next(4) == 0;
            int slipAt = rng.Next(p.Steps.Length);
            for (int i = 0; i < p.Steps.Length; i++)
            {
                if (forget && i == p.Steps.Length - 1) break;
                var next = p.Steps[i].Apply(value);
                if (!forget && i == slipAt)
                {
                    int delta = rng.Next(1, 3) * (rng.Next(2) == 0 ? -1 : 1);
                    next += delta;
                    if (next.Num.Sign <= 0) next += 2 * System.Math.Abs(delta);
                }
                lines.Add(Line(value, p.Steps[i], next, rng));
                value = next;
            }
            if (rng.Next(3) == 0) lines.Clear();
            var text = Write(lines, value, rng);
            if (value.Num.Sign > 0 && text.Length <= MaxAnswerLength && !Judge(p, text).Correct) return text;
        }
        // one less (or one more for an answer of at most 1): always fits and is always wrong
        var wrong = p.Answer.Num > p.Answer.Den ? p.Answer - 1 : p.Answer + 1;
        return $"\\boxed{{{Reference(wrong)}}}";
    }

    public Judgement Judge(WordProblem p, string answer)
    {
        if (string.IsNullOrWhiteSpace(answer)) return new Judgement(false, "empty answer", null);
        var boxed = answer.Contains("\\boxed", StringComparison.Ordinal) ? AnswerExtraction.LastBoxed(answer) : null;
        if (boxed is null) return new Judgement(false, "no \\boxed{} answer", null);
        if (boxed.Length == 0) return new Judgement(false, "empty \\boxed{}", null);
        // the box is the answer (what MathGrader would extract first); grade it once
        bool correct = MathEquivalence.Equivalent(boxed, p.Reference);
        var vote = Normalize(boxed);
        return new Judgement(correct, correct ? "correct" : $"boxed '{boxed}' is not {p.Reference}", vote);
    }

    /// <summary>An answer as its maj@n vote: an exact number (<c>9</c>, <c>7/2</c>, <c>\frac{7}{2}</c>,
    /// <c>3.5</c>) as the reduced fraction <c>7/2</c>; anything else as written, trimmed.</summary>
    public static string Normalize(string answer)
    {
        var t = answer.Replace(" ", "").Replace("\\dfrac", "\\frac").Replace("\\tfrac", "\\frac");
        return TryExact(t) is Rational r ? r.ToString() : answer.Trim();
    }

    /// <summary>An integer, <c>n/d</c>, <c>\frac{n}{d}</c> or decimal as an exact fraction; null otherwise.</summary>
    public static Rational? TryExact(string t)
    {
        static bool Digits(string s) => s.Length is > 0 and <= 30 && s.All(char.IsAsciiDigit);
        static BigInteger Int(string s) => BigInteger.Parse(s, CultureInfo.InvariantCulture);
        bool negative = t.StartsWith('-');
        if (negative) t = t[1..];
        Rational? r = null;
        if (Digits(t)) r = new Rational(Int(t), 1);
        else if (t.Split('/') is [var n, var d] && Digits(n) && Digits(d) && Int(d) != 0) r = new Rational(Int(n), Int(d));
        else if (t.StartsWith("\\frac{", StringComparison.Ordinal) && t.EndsWith('}') && t[6..^1].Split("}{") is [var fn, var fd]
                 && Digits(fn) && Digits(fd) && Int(fd) != 0) r = new Rational(Int(fn), Int(fd));
        else if (t.Split('.') is [var w, var f] && (w.Length == 0 || Digits(w)) && Digits(f))
            r = new Rational(Int(w + f), BigInteger.Pow(10, f.Length));
        return r is Rational v && negative ? new Rational(-v.Num, v.Den) : r;
    }
}
