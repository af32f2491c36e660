using System.Globalization;
using System.Text;

namespace SimKO.Data.Tasks;

/// <summary>Settings of <see cref="OrderingPuzzleTask"/>.</summary>
public sealed record OrderingSettings
{
    /// <summary>Items to arrange (3–8), named A, B, C, …; the response has this many letters. Default 5.</summary>
    public int Items { get; init; } = 5;
    /// <summary>A puzzle has at least this many solutions (≥ 1). Default 2, so pass@k can beat pass@1.</summary>
    public int MinSolutions { get; init; } = 2;
    /// <summary>…and at most this many; fewer means more constraints to satisfy. Default 6 (of 120 orders for 5 items).</summary>
    public int MaxSolutions { get; init; } = 6;
    /// <summary>Whether position constraints (<c>D@2</c> "D is second", <c>C!5</c> "C is not fifth") may appear. Default true.</summary>
    public bool PositionConstraints { get; init; } = true;
    /// <summary>Whether adjacency constraints (<c>A~B</c> "A and B are neighbours") may appear. Default true.</summary>
    public bool AdjacencyConstraints { get; init; } = true;
    /// <summary>Share of the puzzle space (by a stable hash of the question) that is test, in 1/1000. Default 100.</summary>
    public int TestPerMille { get; init; } = 100;
    /// <summary>Problems returned by <see cref="OrderingPuzzleTask.Generate"/> when no count is given: train. Default 5000.</summary>
    public int DefaultTrainCount { get; init; } = 5000;
    /// <summary>Same for test. Default 200.</summary>
    public int DefaultTestCount { get; init; } = 200;

    /// <summary>The documented defaults.</summary>
    public static readonly OrderingSettings Default = new();

    /// <summary>Every problem with these settings at once (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        if (Items is < 3 or > 8) e.Add($"Items = {Items}: must be 3 to 8");
        if (MinSolutions < 1) e.Add($"MinSolutions = {MinSolutions}: must be at least 1");
        if (MaxSolutions < MinSolutions) e.Add($"MaxSolutions = {MaxSolutions} is below MinSolutions = {MinSolutions}");
        if (Items is >= 3 and <= 8 && MaxSolutions >= Factorial(Items)) e.Add($"MaxSolutions = {MaxSolutions}: must be below {Items}! = {Factorial(Items)} or puzzles need no constraint");
        if (TestPerMille is < 1 or > 999) e.Add($"TestPerMille = {TestPerMille}: must be 1 to 999");
        if (DefaultTrainCount < 0) e.Add($"DefaultTrainCount = {DefaultTrainCount}: must be at least 0");
        if (DefaultTestCount < 0) e.Add($"DefaultTestCount = {DefaultTestCount}: must be at least 0");
        return e;
    }

    internal static int Factorial(int n) { int f = 1; for (int k = 2; k <= n; k++) f *= k; return f; }
}

/// <summary>A constraint of an ordering puzzle.</summary>
/// <param name="Kind">'&lt;' (A before B), '@' (A at position P), '!' (A not at position P), '~' (A next to B).</param>
/// <param name="A">First item, 0-based (A = 0).</param>
/// <param name="B">Second item for '&lt;' and '~', else -1.</param>
/// <param name="Position">1-based position for '@' and '!', else 0.</param>
public readonly record struct OrderConstraint(char Kind, int A, int B, int Position)
{
    /// <summary>Whether the order (item → position, 0-based) satisfies it.</summary>
    public bool Holds(ReadOnlySpan<int> positionOf) => Kind switch
    {
        '<' => positionOf[A] < positionOf[B],
        '~' => Math.Abs(positionOf[A] - positionOf[B]) == 1,
        '@' => positionOf[A] == Position - 1,
        '!' => positionOf[A] != Position - 1,
        _ => false,
    };

    /// <summary>Compact form used in prompts: <c>A&lt;C</c>, <c>D@2</c>, <c>C!5</c>, <c>A~B</c>.</summary>
    public override string ToString() => Kind is '<' or '~'
        ? $"{(char)('A' + A)}{Kind}{(char)('A' + B)}"
        : $"{(char)('A' + A)}{Kind}{Position.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>In words, for the human-readable question.</summary>
    public string Describe() => Kind switch
    {
        '<' => $"{(char)('A' + A)} comes before {(char)('A' + B)}",
        '~' => $"{(char)('A' + A)} is next to {(char)('A' + B)}",
        '@' => $"{(char)('A' + A)} is at position {Position}",
        _ => $"{(char)('A' + A)} is not at position {Position}",
    };
}

/// <summary>What an ordering puzzle carries: its size, constraints and every solution (sorted).</summary>
public sealed record OrderingPayload(int Items, OrderConstraint[] Constraints, string[] Solutions);

/// <summary>
/// A SynLogic-style constraint puzzle: arrange the items A, B, C, … in a row so that every constraint holds
/// (<c>A&lt;C</c> A before C, <c>D@2</c> D second, <c>C!5</c> C not fifth, <c>A~B</c> A next to B). Each puzzle has between
/// <see cref="OrderingSettings.MinSolutions"/> and <see cref="OrderingSettings.MaxSolutions"/> solutions, so several
/// answers are right and the first few letters are "forking" choices. Prompt: <c>5:A&lt;C,D@2,B~E=</c>;
/// response: the order, e.g. <c>BDACE</c>. The verifier rejects anything that is not a permutation of the items
/// and any order that breaks a constraint. Constraints are only added when they remove solutions.
/// </summary>
public sealed class OrderingPuzzleTask : IBuiltinTask, IVerifier
{
    /// <summary>The settings this task was built with.</summary>
    public OrderingSettings Settings { get; }
    readonly int[][] allOrders; // every permutation, as item at each position

    /// <exception cref="ArgumentException">Invalid settings (all problems listed).</exception>
    public OrderingPuzzleTask(OrderingSettings? settings = null, string name = "order")
    {
        Settings = settings ?? OrderingSettings.Default;
        var errors = Settings.Validate();
        if (errors.Count > 0) throw new ArgumentException($"invalid ordering-puzzle settings: {string.Join("; ", errors)}", nameof(settings));
        Name = name;
        int n = Settings.Items;
        allOrders = Generation.Arrangements(n, n).ToArray();
        var letters = new string(Enumerable.Range(0, n).Select(i => (char)('A' + i)).ToArray());
        var digits = new string(Enumerable.Range(1, n).Select(i => (char)('0' + i)).ToArray());
        Alphabet = Generation.AlphabetOf([letters, digits, "<@!~,:="]);
        MaxResponseLength = n;
        // Constraints are only kept when they remove solutions, so there are fewer than n! of them; in practice
        // far fewer. Bound: every informative constraint of the kinds allowed.
        int kinds = n * (n - 1) + (Settings.AdjacencyConstraints ? n * (n - 1) / 2 : 0) + (Settings.PositionConstraints ? 2 * n * n : 0);
        MaxPromptLength = 2 + kinds * 4 + 1;
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
    /// <inheritdoc/>
    public int? SplitSize(Split split) => null;

    /// <inheritdoc/>
    /// <remarks>Without a count: <see cref="OrderingSettings.DefaultTrainCount"/> or <see cref="OrderingSettings.DefaultTestCount"/>.</remarks>
    public IReadOnlyList<Problem> Generate(Split split, int seed, int? count = null) =>
        Generation.Distinct(split, seed, count ?? (split == Split.Train ? Settings.DefaultTrainCount : Settings.DefaultTestCount),
            Settings.TestPerMille, Draw, Name);

    /// <inheritdoc/>
    public string Prompt(Problem problem)
    {
        var p = PayloadOf(problem);
        return $"{p.Items.ToString(CultureInfo.InvariantCulture)}:{string.Join(",", p.Constraints)}=";
    }

    Problem Draw(Random rng)
    {
        int n = Settings.Items;
        for (int restart = 0; restart < 2000; restart++)
        {
            var alive = allOrders.ToList();
            var constraints = new List<OrderConstraint>();
            int failures = 0;
            while (alive.Count > Settings.MaxSolutions && failures < 200)
            {
                var c = RandomConstraint(rng, n);
                var kept = alive.Where(o => c.Holds(PositionsOf(o))).ToList();
                // Informative and keeps enough solutions; otherwise draw another.
                if (kept.Count == alive.Count || kept.Count < Settings.MinSolutions) { failures++; continue; }
                constraints.Add(c);
                alive = kept;
            }
            if (alive.Count > Settings.MaxSolutions || alive.Count < Settings.MinSolutions) continue;
            var solutions = alive.Select(OrderString).OrderBy(s => s, StringComparer.Ordinal).ToArray();
            var payload = new OrderingPayload(n, constraints.ToArray(), solutions);
            var items = string.Join(", ", Enumerable.Range(0, n).Select(i => (char)('A' + i)));
            var question = $"Arrange {items} in a row so that: {string.Join("; ", constraints.Select(c => c.Describe()))}.";
            return new Problem("", question, solutions[0]) { Source = Name, Payload = payload };
        }
        throw new InvalidOperationException(
            $"{Name}: no puzzle of {n} items with {Settings.MinSolutions} to {Settings.MaxSolutions} solutions found in 2000 attempts; widen the range or allow more constraint kinds");
    }

    OrderConstraint RandomConstraint(Random rng, int n)
    {
        while (true)
        {
            int kind = rng.Next(4);
            int a = rng.Next(n), b = rng.Next(n - 1);
            if (b >= a) b++;
            switch (kind)
            {
                case 0: case 1: return new OrderConstraint('<', a, b, 0); // "before" is the main kind
                case 2 when Settings.AdjacencyConstraints: return new OrderConstraint('~', Math.Min(a, b), Math.Max(a, b), 0);
                case 3 when Settings.PositionConstraints:
                    return rng.Next(3) == 0 ? new OrderConstraint('@', a, -1, rng.Next(1, n + 1)) : new OrderConstraint('!', a, -1, rng.Next(1, n + 1));
            }
        }
    }

    static int[] PositionsOf(int[] order)
    {
        var pos = new int[order.Length];
        for (int i = 0; i < order.Length; i++) pos[order[i]] = i;
        return pos;
    }

    static string OrderString(int[] order) => new(order.Select(i => (char)('A' + i)).ToArray());

    static OrderingPayload PayloadOf(Problem problem) =>
        problem.Payload as OrderingPayload ?? throw new ArgumentException($"problem {problem.Id} is not an ordering puzzle (its payload is {problem.Payload?.GetType().Name ?? "null"})", nameof(problem));

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
        var solutions = new HashSet<string>(p.Solutions, StringComparer.Ordinal);
        var items = Enumerable.Range(0, p.Items).ToArray();
        while (true)
        {
            var order = OrderString(Generation.Shuffled(items, rng));
            if (!solutions.Contains(order)) return order;
        }
    }

    /// <inheritdoc/>
    public double Score(Problem problem, string completion) => Grade(problem, completion).Score;

    /// <inheritdoc/>
    public GradeResult Grade(Problem problem, string completion)
    {
        var p = PayloadOf(problem);
        var text = (completion ?? "").Trim();
        var reason = Check(p, text);
        return new GradeResult(text.Length == 0 ? null : text, reason is null, ExtractionMethod.Task, reason);
    }

    /// <summary>Null when <paramref name="text"/> is a correct order, else why not.</summary>
    internal static string? Check(OrderingPayload p, string text)
    {
        if (text.Length == 0) return "empty response";
        if (text.Length != p.Items) return $"'{Shorten(text)}' has {text.Length} characters; expected an order of {p.Items} letters";
        Span<int> positionOf = stackalloc int[p.Items];
        positionOf.Fill(-1);
        for (int i = 0; i < text.Length; i++)
        {
            int item = text[i] - 'A';
            if (item < 0 || item >= p.Items) return $"'{text[i]}' is not one of the items A to {(char)('A' + p.Items - 1)}";
            if (positionOf[item] >= 0) return $"'{text[i]}' appears twice";
            positionOf[item] = i;
        }
        foreach (var c in p.Constraints)
            if (!c.Holds(positionOf)) return $"breaks {c} ({c.Describe()})";
        return null;
    }

    static string Shorten(string s) => s.Length <= 20 ? s : s[..20] + "…";
}
