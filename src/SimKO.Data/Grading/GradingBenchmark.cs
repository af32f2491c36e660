using System.Diagnostics;
using SimKO.Data.Answers;

namespace SimKO.Data.Grading;

/// <summary>What <see cref="GradingBenchmark.Run"/> measured.</summary>
/// <param name="Gradings">Completions graded in the timed part.</param>
/// <param name="Seconds">Wall time of the timed part.</param>
/// <param name="Cases">Distinct (problem, completion) pairs cycled through.</param>
/// <param name="CorrectFraction">Share of those pairs graded correct (a sanity check of the corpus).</param>
/// <param name="MeanCompletionLength">Mean completion length in characters.</param>
public sealed record GradingBenchmarkResult(long Gradings, double Seconds, int Cases, double CorrectFraction, double MeanCompletionLength)
{
    /// <summary>Gradings per second on one thread.</summary>
    public double PerSecond => Gradings / Seconds;

    /// <inheritdoc/>
    public override string ToString() =>
        $"graded {Gradings:N0} completions in {Seconds:F2} s on one thread: {PerSecond:N0} gradings/s " +
        $"({Cases} distinct cases, mean completion {MeanCompletionLength:N0} chars, {CorrectFraction:P0} correct)";
}

/// <summary>
/// Measures grading speed (the hot path of a training step) on one thread: a built-in corpus of typical
/// completions (reasoning text ending in <c>\boxed{…}</c>) over answer formats taken from the shared datasets —
/// the same string, an equivalent other form, or a wrong answer — or on user-given pairs. A command runs it
/// (<c>simko grade --bench</c>), never a test.
/// </summary>
public static class GradingBenchmark
{
    /// <summary>(reference, an equivalent prediction, a wrong prediction), formats from MATH-500, Minerva,
    /// OlympiadBench, AIME/AMC and GSM8K.</summary>
    internal static readonly (string Reference, string Equivalent, string Wrong)[] TypicalAnswers =
    [
        ("18", "18", "17"),
        ("72", "72.0", "27"),
        ("1,080", "1080", "1008"),
        ("025", "25", "52"),
        ("27.0", "27", "26"),
        ("\\frac{14}{3}", "\\dfrac{14}{3}", "\\frac{13}{3}"),
        ("\\frac{3}{56}", "3/56", "\\frac{3}{65}"),
        ("\\frac{1}{4}", "0.25", "0.4"),
        ("3\\sqrt{13}", "\\sqrt{117}", "13\\sqrt{3}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", "(3,\\pi)"),
        ("90^\\circ", "90", "45^\\circ"),
        ("6 - 5i", "6-5i", "6+5i"),
        ("x=5", "5", "x=-5"),
        ("1,-2", "-2, 1", "1, 2"),
        ("(3,4]", "(3, 4]", "[3,4]"),
        ("\\text{Evelyn}", "Evelyn", "Navin"),
        ("10,\\!080", "10080", "10800"),
        ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", "1+\\sqrt{19}"),
        ("\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}", "\\begin{pmatrix} -\\frac13 \\\\ \\frac23 \\\\ \\frac53 \\end{pmatrix}", "\\begin{pmatrix} 1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}"),
        ("x^5 - x^4 + x^3 - x^2 + x - 1", "x^5-x^4+x^3-x^2+x-1", "x^5+x^4+x^3+x^2+x+1"),
        ("2k+2", "2(k+1)", "2k+1"),
        ("\\pi", "\\pi", "2\\pi"),
        ("4.5e33", "4.5\\times 10^{33}", "4.5\\times10^{32}"),
        ("0.006", "6\\times10^{-3}", "0.06"),
        ("\\frac{1}{2}", "50\\%", "\\frac{1}{3}"),
        ("$\\frac{9 \\sqrt{3}}{20}$", "\\frac{9\\sqrt3}{20}", "\\frac{9\\sqrt2}{20}"),
        ("$2^{1009}$", "2^{1009}", "2^{1008}"),
        ("$(1,1), (3,2)$", "(3,2),(1,1)", "(1,1),(2,3)"),
        ("5.4 \\text{ cents}", "5.4", "4.5"),
        ("204", "204", "240"),
    ];

    /// <summary>Filler reasoning of a typical length (~1,100 characters) that precedes the final answer.</summary>
    const string Reasoning =
        "Let me work through this carefully. We are given the conditions of the problem, so first we set up the " +
        "equations. Let $x$ be the unknown quantity. From the first condition, $3x + 7 = 2(x + 5)$, which gives " +
        "$x = 3$. Substituting back, the second expression becomes $\\frac{x^2 + 1}{x - 1} = \\frac{10}{2} = 5$. " +
        "Now consider the sum $\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$; with $n = 12$ this is $78$. We also need the " +
        "area of the triangle with vertices $(0,0)$, $(4,0)$ and $(0,3)$, which is $\\frac{1}{2} \\cdot 4 \\cdot 3 = 6$. " +
        "Checking the constraint $a^2 + b^2 = c^2$ with $a = 3$, $b = 4$ gives $c = 5$, consistent with the figure. " +
        "Wait, let me double-check the second step: $2(x+5) = 2x + 10$, so $3x + 7 = 2x + 10$ and indeed $x = 3$. " +
        "Next, the probability that both events happen is $\\frac{1}{3} \\cdot \\frac{3}{4} = \\frac{1}{4}$, and the " +
        "complement is $1 - \\frac{1}{4} = \\frac{3}{4}$. Combining everything, the quantity asked for follows from " +
        "the relations above after simplifying the radicals $\\sqrt{12} = 2\\sqrt{3}$ and rationalising " +
        "$\\frac{1}{\\sqrt{3}} = \\frac{\\sqrt{3}}{3}$. Therefore the final answer is ";

    /// <summary>The built-in corpus: for each typical answer, completions giving it verbatim, in another
    /// equivalent form, and wrong.</summary>
    public static IReadOnlyList<(Problem Problem, string Completion)> TypicalCases()
    {
        var cases = new List<(Problem, string)>();
        for (int i = 0; i < TypicalAnswers.Length; i++)
        {
            var (reference, equivalent, wrong) = TypicalAnswers[i];
            var problem = new Problem($"bench/{i}", "", reference) { IsMultipleAnswer = reference.StartsWith("$(", StringComparison.Ordinal) };
            foreach (var answer in new[] { reference, equivalent, wrong })
                cases.Add((problem, $"{Reasoning}$\\boxed{{{answer}}}$."));
        }
        return cases;
    }

    /// <summary>Grades <paramref name="cases"/> (default: <see cref="TypicalCases"/>) round-robin on the calling
    /// thread for about <paramref name="duration"/>, after a short warm-up.</summary>
    public static GradingBenchmarkResult Run(TimeSpan duration, IVerifier? verifier = null, IReadOnlyList<(Problem Problem, string Completion)>? cases = null)
    {
        verifier ??= MathVerifier.Default;
        cases ??= TypicalCases();
        if (cases.Count == 0) throw new ArgumentException("no cases to grade", nameof(cases));
        int correct = 0;
        foreach (var (p, c) in cases) if (verifier.Score(p, c) == 1.0) correct++; // also the warm-up
        var warm = Stopwatch.StartNew();
        for (int i = 0; warm.Elapsed < TimeSpan.FromMilliseconds(200); i++) verifier.Score(cases[i % cases.Count].Problem, cases[i % cases.Count].Completion);

        var sw = Stopwatch.StartNew();
        long n = 0;
        double sink = 0;
        while (true)
        {
            for (int j = 0; j < cases.Count; j++) sink += verifier.Score(cases[j].Problem, cases[j].Completion);
            n += cases.Count;
            if (sw.Elapsed >= duration) break;
        }
        sw.Stop();
        GC.KeepAlive(sink);
        return new GradingBenchmarkResult(n, sw.Elapsed.TotalSeconds, cases.Count, (double)correct / cases.Count, cases.Average(c => (double)c.Completion.Length));
    }
}
