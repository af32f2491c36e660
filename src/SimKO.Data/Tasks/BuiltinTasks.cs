namespace SimKO.Data.Tasks;

/// <summary>The built-in tasks by name, with their default settings.</summary>
public static class BuiltinTasks
{
    /// <summary>Names <see cref="Create"/> accepts: <c>countdown</c> (3 numbers 1–9, the CPU experiment),
    /// <c>countdown4</c> (4 numbers), <c>wordmath</c> (word problems, <c>\boxed{}</c> answers) and <c>order</c>
    /// (the logic ordering puzzle).</summary>
    public static readonly IReadOnlyList<string> Names = ["countdown", "countdown4", "wordmath", "order"];

    /// <summary>The task named <paramref name="name"/> with default settings.</summary>
    /// <exception cref="ArgumentException">Unknown name (the message lists the valid ones).</exception>
    public static IBuiltinTask Create(string name) => name switch
    {
        "countdown" => new CountdownTask(CountdownSettings.Default, "countdown"),
        "countdown4" => new CountdownTask(CountdownSettings.FourNumbers, "countdown4"),
        "wordmath" => new WordProblemTask(WordProblemSettings.Default, "wordmath"),
        "order" => new OrderingPuzzleTask(OrderingSettings.Default, "order"),
        _ => throw new ArgumentException($"unknown task '{name}'; valid: {string.Join(", ", Names)}", nameof(name)),
    };
}
