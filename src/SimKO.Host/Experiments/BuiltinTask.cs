using SimKO.Data.Tasks;
using SimKO.Data.Tokenizers;
using SimKO.Host.Evaluation;
using SimKO.Host.Training;

namespace SimKO.Host.Experiments;

/// <summary>A built-in task bound to a tokenizer: training problems, evaluation problems, and
/// supervised examples for the warm-start.</summary>
public sealed class BuiltinTask
{
    public required string Name { get; init; }
    public required ITokenizer Tokenizer { get; init; }
    public required IReadOnlyList<TrainProblem> Train { get; init; }
    public required IReadOnlyList<EvalProblem> Test { get; init; }
    /// <summary>A (prompt, target) pair for the warm-start: a correct answer with probability p, else a wrong one.</summary>
    public required Func<Random, double, (int[] Prompt, int[] Target)> Example { get; init; }
    public required int MaxNewTokens { get; init; }

    public static BuiltinTask Create(string name) => name switch
    {
        "countdown" => Countdown(new Countdown()),
        _ => throw new ArgumentException($"unknown built-in task '{name}'; valid: countdown"),
    };

    public static BuiltinTask Countdown(Countdown task)
    {
        var tok = new CharTokenizer(SimKO.Data.Tasks.Countdown.Alphabet);
        string Answer(int[] ids) => tok.Decode(ids.TakeWhile(i => i != tok.EosId));
        int[] Prompt(CountdownProblem p) => tok.Encode(task.Prompt(p));
        return new BuiltinTask
        {
            Name = "countdown",
            Tokenizer = tok,
            Train = task.Train.Select(p => new TrainProblem(p.Id, Prompt(p), ids => SimKO.Data.Tasks.Countdown.Reward(p, Answer(ids)))).ToList(),
            Test = task.Test.Select(p => new EvalProblem(p.Id, Prompt(p), ids =>
            {
                var a = Answer(ids);
                var ok = SimKO.Data.Tasks.Countdown.Verify(p, a) == CountdownVerdict.Correct;
                // maj@n votes on the value an answer reaches (an unparseable answer does not vote)
                string? value = null;
                try { value = SimKO.Data.Tasks.Countdown.Parse(a.Trim()).Value.ToString(); } catch (Exception e) when (e is FormatException or DivideByZeroException) { }
                return (ok, value);
            })).ToList(),
            Example = (rng, pCorrect) =>
            {
                var p = task.Train[rng.Next(task.Train.Count)];
                var answer = rng.NextDouble() < pCorrect ? task.SampleCorrect(p, rng) : task.SampleWrong(p, rng);
                return (Prompt(p), [.. tok.Encode(answer), tok.EosId]);
            },
            MaxNewTokens = task.MaxAnswerLength + 1,
        };
    }
}
