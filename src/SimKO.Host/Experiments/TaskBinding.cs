using SimKO.Data.Tasks;
using SimKO.Data.Tokenizers;
using SimKO.Host.Evaluation;
using SimKO.Host.Training;

namespace SimKO.Host.Experiments;

/// <summary>A task bound to a tokenizer: training problems (with rewards), evaluation problems (with
/// judges), and, for built-in tasks, supervised examples for the warm-start. Built-in tasks bring
/// their own character tokenizer; dataset presets use the model's tokenizer and the math grader.</summary>
public sealed class TaskBinding
{
    public required string Name { get; init; }
    public required ITokenizer Tokenizer { get; init; }
    public required IReadOnlyList<TrainProblem> Train { get; init; }
    public required IReadOnlyList<EvalProblem> Test { get; init; }
    /// <summary>A (prompt, target) pair for the warm-start: a correct answer with probability p, else a wrong one.</summary>
    public required Func<Random, double, (int[] Prompt, int[] Target)> Example { get; init; }
    public required int MaxNewTokens { get; init; }
    /// <summary>Token ids that end a response.</summary>
    public int[] StopTokenIds { get; init; } = [];
    /// <summary>Longest prompt + response in tokens, when the task knows it (built-in tasks).</summary>
    public int? MaxSequenceLength { get; init; }

    public static readonly string[] BuiltinNames = ["countdown", "order"];

    public static bool IsBuiltin(string name) => BuiltinNames.Contains(name);

    public static TaskBinding Create(string name) => name switch
    {
        "countdown" => Builtin(new Countdown()),
        "order" => Builtin(new OrderingPuzzle()),
        _ => throw new ArgumentException($"unknown built-in task '{name}'; valid: {string.Join(", ", BuiltinNames)}; dataset presets ({string.Join(", ", SimKO.Data.Math.Datasets.Names)}) need a model folder with its tokenizer"),
    };

    /// <summary>A math dataset preset with the model's tokenizer: prompts from a template, rewards from
    /// the math grader on the decoded response. Training uses the preset's train split when it has one.</summary>
    public static TaskBinding Preset(string preset, ITokenizer tok, string template, int maxNewTokens, string? datasetRoot = null)
    {
        IReadOnlyList<SimKO.Data.Math.MathProblem> Load(string split) => SimKO.Data.Math.Datasets.Load(preset, datasetRoot, split);
        var test = Load("test");
        IReadOnlyList<SimKO.Data.Math.MathProblem> train;
        try { train = Load("train"); }
        catch (Exception e) when (e is SimKO.Data.Math.DatasetException or FileNotFoundException or ArgumentException) { train = test; }
        return Math(preset, train, test, tok, template, maxNewTokens);
    }

    /// <summary>Math problems (from a preset or any file) with the model's tokenizer and the math grader.</summary>
    public static TaskBinding Math(string name, IReadOnlyList<SimKO.Data.Math.MathProblem> train, IReadOnlyList<SimKO.Data.Math.MathProblem> test,
        ITokenizer tok, string template, int maxNewTokens)
    {
        var prompt = SimKO.Data.Math.Prompts.ByName(template);
        var preset = name;
        var stops = new[] { tok.EosId, tok.PadId };
        string Response(int[] ids) => tok.Decode(ids.TakeWhile(i => !stops.Contains(i)));
        return new TaskBinding
        {
            Name = preset,
            Tokenizer = tok,
            Train = train.Select(p => new TrainProblem(p.Id, tok.Encode(prompt(p.Question)),
                ids => SimKO.Data.Math.MathGrader.Grade(Response(ids), p.Answer).Correct ? 1.0 : 0.0)).ToList(),
            Test = test.Select(p => new EvalProblem(p.Id, tok.Encode(prompt(p.Question)), ids =>
            {
                var (extracted, ok) = SimKO.Data.Math.MathGrader.Grade(Response(ids), p.Answer);
                return (ok, extracted);
            })).ToList(),
            Example = (_, _) => throw new NotSupportedException($"{preset} has no supervised warm-start examples"),
            MaxNewTokens = maxNewTokens,
            StopTokenIds = stops,
        };
    }

    /// <summary>A built-in task with a character tokenizer over its alphabet: the reward is its verifier's
    /// verdict, the maj@n vote the value an answer reaches, the warm-start examples its sampled answers.</summary>
    public static TaskBinding Builtin<TProblem>(IBuiltinTask<TProblem> task)
    {
        var tok = new CharTokenizer(task.Alphabet);
        string Answer(int[] ids) => tok.Decode(ids.TakeWhile(i => i != tok.EosId));
        int[] Prompt(TProblem p) => tok.Encode(task.Prompt(p));
        return new TaskBinding
        {
            Name = task.Name,
            Tokenizer = tok,
            Train = task.Train.Select(p => new TrainProblem(task.Id(p), Prompt(p), ids => task.Judge(p, Answer(ids)).Correct ? 1.0 : 0.0)).ToList(),
            Test = task.Test.Select(p => new EvalProblem(task.Id(p), Prompt(p), ids =>
            {
                var j = task.Judge(p, Answer(ids));
                return (j.Correct, j.Vote);
            })).ToList(),
            Example = (rng, pCorrect) =>
            {
                var p = task.Train[rng.Next(task.Train.Count)];
                var answer = rng.NextDouble() < pCorrect ? task.SampleCorrect(p, rng) : task.SampleWrong(p, rng);
                return (Prompt(p), [.. tok.Encode(answer), tok.EosId]);
            },
            MaxNewTokens = task.MaxAnswerLength + 1,
            MaxSequenceLength = task.MaxPromptLength + task.MaxAnswerLength + 1,
            StopTokenIds = [tok.EosId],
        };
    }
}
