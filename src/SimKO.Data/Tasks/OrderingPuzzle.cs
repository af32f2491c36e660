using System.Globalization;

namespace SimKO.Data.Tasks;

/// <summary>Difficulty knobs of the ordering puzzle: items to arrange, how many correct arrangements a
/// puzzle keeps, the constraint kinds allowed, and the split sizes.</summary>
public sealed record OrderingSettings(
    int Items = 5, int MinSolutions = 2, int MaxSolutions = 4, int MaxConstraints = 10,
    bool Adjacency = true, bool Positions = true,
    int TrainProblems = 4000, int TestProblems = 200, int TestPerMille = 100, int Seed = 1234)
{
    public List<string> Validate()
    {
        var p = new List<string>();
        if (Items is < 3 or > 7) p.Add($"items must be 3..7, got {Items}");
        if (MinSolutions < 1) p.Add($"min_solutions must be >= 1, got {MinSolutions}");
        if (MaxSolutions < MinSolutions) p.Add($"max_solutions ({MaxSolutions}) must be >= min_solutions ({MinSolutions})");
        if (MaxConstraints is < 1 or > 30) p.Add($"max_constraints must be 1..30, got {MaxConstraints}");
        if (TrainProblems < 1 || TestProblems < 1) p.Add($"train/test problems must be >= 1, got {TrainProblems}/{TestProblems}");
        if (TestPerMille is < 1 or > 999) p.Add($"test_per_mille must be 1..999, got {TestPerMille}");
        return p;
    }
}

/// <summary>One rule of an ordering puzzle over items A, B, C, …: <c>A&lt;C</c> A somewhere before C,
/// <c>A~B</c> A next to B, <c>D@2</c> D in position 2, <c>C!5</c> C not in position 5 (positions from 1).</summary>
public readonly record struct OrderConstraint(char Kind, int A, int B, int Position)
{
    /// <summary>Whether the rule holds, given the position (0-based) of every item.</summary>
    public bool Holds(ReadOnlySpan<int> positionOf) => Kind switch
    {
        '<' => positionOf[A] < positionOf[B],
        '~' => System.Math.Abs(positionOf[A] - positionOf[B]) == 1,
        '@' => positionOf[A] == Position - 1,
        '!' => positionOf[A] != Position - 1,
        _ => throw new InvalidOperationException($"unknown constraint kind '{Kind}'"),
    };

    public override string ToString() => Kind is '<' or '~'
        ? $"{(char)('A' + A)}{Kind}{(char)('A' + B)}"
        : $"{(char)('A' + A)}{Kind}{Position.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>An ordering puzzle: its constraints and every arrangement that satisfies them (sorted).</summary>
public sealed record OrderingProblem(string Id, int Items, OrderConstraint[] Constraints, string[] Solutions);

/// <summary>
/// A SynLogic-style constraint puzzle (the logic task): arrange the items A, B, C, … in a row so that
/// every constraint holds. Prompt <c>5:A&lt;C,D@2,B~E=</c>, answer the arrangement, e.g. <c>BDACE</c>.
/// Constraints are drawn at random and kept only when they remove arrangements, until at most
/// MaxSolutions (and at least MinSolutions) remain: several answers are right, and the first letters
/// are the "forking" choices that decide whether the rest can still succeed. Train and test problems
/// are disjoint by a hash of the prompt (a fixed share of the problem space is test, whatever the seed).
/// The verifier rejects anything that is not a permutation of the items, and any arrangement that breaks a rule.
/// </summary>
public sealed class OrderingPuzzle : IBuiltinTask<OrderingProblem>
{
    public OrderingSettings Settings { get; }
    public string Name => "order";
    public string Alphabet { get; }
    public IReadOnlyList<OrderingProblem> Train { get; }
    public IReadOnlyList<OrderingProblem> Test { get; }
    public int MaxPromptLength => 3 + 4 * Settings.MaxConstraints;
    public int MaxAnswerLength => Settings.Items;
    readonly int[][] _orders;       // every arrangement: the item at each position
    readonly int[][] _positions;    // the same arrangements: the position of each item

    public OrderingPuzzle(OrderingSettings? settings = null)
    {
        Settings = settings ?? new OrderingSettings();
        var problems = Settings.Validate();
        if (problems.Count > 0) throw new ArgumentException("order settings: " + string.Join("; ", problems));
        int n = Settings.Items;
        _orders = TaskSplit.Permutations(n).ToArray();
        _positions = _orders.Select(PositionsOf).ToArray();
        Alphabet = new string(Enumerable.Range(0, n).Select(i => (char)('A' + i))
            .Concat(Enumerable.Range(1, n).Select(i => (char)('0' + i))).ToArray()) + "<~@!,:=";
        Train = TaskSplit.Draw(Name, false, Settings.TrainProblems, Settings.Seed, Settings.TestPerMille, Draw, Prompt);
        Test = TaskSplit.Draw(Name, true, Settings.TestProblems, Settings.Seed, Settings.TestPerMille, Draw, Prompt);
    }

    public string Id(OrderingProblem p) => p.Id;

    public string Prompt(OrderingProblem p) =>
        $"{p.Items.ToString(CultureInfo.InvariantCulture)}:{string.Join(",", p.Constraints)}=";

    /// <summary>The puzzle in words (for people and for prompts of a general model).</summary>
    public static string Describe(OrderingProblem p)
    {
        string Item(int i) => ((char)('A' + i)).ToString();
        var rules = p.Constraints.Select(c => c.Kind switch
        {
            '<' => $"{Item(c.A)} comes before {Item(c.B)}",
            '~' => $"{Item(c.A)} is next to {Item(c.B)}",
            '@' => $"{Item(c.A)} is in position {c.Position}",
            _ => $"{Item(c.A)} is not in position {c.Position}",
        });
        return $"Arrange {string.Join(", ", Enumerable.Range(0, p.Items).Select(Item))} in a row so that: {string.Join("; ", rules)}.";
    }

    OrderingProblem Draw(Random rng)
    {
        int n = Settings.Items;
        for (int attempt = 0; attempt < 10_000; attempt++)
        {
            var alive = _positions.ToList();
            var constraints = new List<OrderConstraint>();
            int misses = 0;
            while (alive.Count > Settings.MaxSolutions && constraints.Count < Settings.MaxConstraints && misses < 200)
            {
                var c = RandomConstraint(rng, n);
                var kept = alive.Where(pos => c.Holds(pos)).ToList();
                if (kept.Count == alive.Count || kept.Count < Settings.MinSolutions) { misses++; continue; }
                constraints.Add(c);
                alive = kept;
            }
            if (alive.Count > Settings.MaxSolutions || alive.Count < Settings.MinSolutions) continue;
            var solutions = alive.Select(OrderText).Order(StringComparer.Ordinal).ToArray();
            var p = new OrderingProblem("", n, constraints.ToArray(), solutions);
            return p with { Id = $"order:{TaskSplit.Hash(Prompt(p)):x16}" };
        }
        throw new ArgumentException($"order: no puzzle of {n} items with {Settings.MinSolutions}..{Settings.MaxSolutions} solutions " +
                                    $"within {Settings.MaxConstraints} constraints in 10,000 attempts; widen the range");
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
                case 0 or 1: return new OrderConstraint('<', a, b, 0);
                case 2 when Settings.Adjacency: return new OrderConstraint('~', System.Math.Min(a, b), System.Math.Max(a, b), 0);
                case 3 when Settings.Positions: return new OrderConstraint(rng.Next(3) == 0 ? '@' : '!', a, -1, rng.Next(1, n + 1));
            }
        }
    }

    static int[] PositionsOf(int[] order)
    {
        var pos = new int[order.Length];
        for (int i = 0; i < order.Length; i++) pos[order[i]] = i;
        return pos;
    }

    static string OrderText(int[] positionOf)
    {
        var chars = new char[positionOf.Length];
        for (int item = 0; item < positionOf.Length; item++) chars[positionOf[item]] = (char)('A' + item);
        return new string(chars);
    }

    /// <summary>Null when the answer is a correct arrangement, else why not.</summary>
    public static string? Check(OrderingProblem p, string answer)
    {
        var text = answer.Trim();
        if (text.Length == 0) return "empty answer";
        if (text.Length != p.Items) return $"'{text}' has {text.Length} letters; expected an arrangement of {p.Items}";
        Span<int> positionOf = stackalloc int[p.Items];
        positionOf.Fill(-1);
        for (int i = 0; i < text.Length; i++)
        {
            int item = text[i] - 'A';
            if (item < 0 || item >= p.Items) return $"'{text[i]}' is not one of the items A..{(char)('A' + p.Items - 1)}";
            if (positionOf[item] >= 0) return $"'{text[i]}' appears twice";
            positionOf[item] = i;
        }
        foreach (var c in p.Constraints)
            if (!c.Holds(positionOf)) return $"breaks {c}";
        return null;
    }

    public Judgement Judge(OrderingProblem p, string answer)
    {
        var why = Check(p, answer);
        var text = answer.Trim();
        return new Judgement(why is null, why ?? "correct", text.Length == 0 ? null : text);
    }

    public string SampleCorrect(OrderingProblem p, Random rng) => p.Solutions[rng.Next(p.Solutions.Length)];

    /// <summary>A random arrangement of the items that breaks at least one rule.</summary>
    public string SampleWrong(OrderingProblem p, Random rng)
    {
        while (true)
        {
            var order = _orders[rng.Next(_orders.Length)];
            var text = new string(order.Select(i => (char)('A' + i)).ToArray());
            if (Array.BinarySearch(p.Solutions, text, StringComparer.Ordinal) < 0) return text;
        }
    }
}
