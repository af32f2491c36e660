using Microsoft.Extensions.Logging;
using SimKO.Data.Tasks;
using SimKO.Data.Tokenizers;
using SimKO.Host.Evaluation;
using SimKO.Host.Training;

namespace SimKO.Host.Experiments;

/// <summary>A task bound to a tokenizer: training problems (with rewards), evaluation problems (with
/// judges), and, for built-in tasks, supervised examples for the warm-start. Built-in tasks bring
/// their own character tokenizer; dataset presets use the model's tokenizer and the math grader.</summary>
public sealed record TaskBinding
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
    /// <summary>Rows of the task's files that were skipped as bad (only when asked to skip), each with file, line and reason.</summary>
    public IReadOnlyList<string> SkippedRows { get; init; } = [];
    /// <summary>Longest prompt + response in tokens, when the task knows it (built-in tasks).</summary>
    public int? MaxSequenceLength { get; init; }

    public static readonly string[] BuiltinNames = ["countdown", "order", "wordmath"];

    public static bool IsBuiltin(string name) => BuiltinNames.Contains(name);

    /// <summary>A model trained on a built-in task reads its prompts with the task's character tokenizer:
    /// throws when the model folder's tokenizer is another (a model of another task).</summary>
    public void CheckTokenizer(ITokenizer modelTokenizer, string modelFolder)
    {
        var probe = Train[0].PromptIds;
        bool same;
        try { same = modelTokenizer.VocabSize == Tokenizer.VocabSize && modelTokenizer.Encode(Tokenizer.Decode(probe)).SequenceEqual(probe); }
        catch (ArgumentException) { same = false; }
        if (!same)
            throw new ArgumentException($"{modelFolder}: its tokenizer is not the {Name} task's (vocabulary {modelTokenizer.VocabSize} vs {Tokenizer.VocabSize}); was it trained on another task?");
    }

    public static TaskBinding Create(string name) => name switch
    {
        "countdown" => Builtin(new Countdown()),
        "order" => Builtin(new OrderingPuzzle()),
        "wordmath" => Builtin(new WordProblems()),
        _ => throw new ArgumentException($"unknown built-in task '{name}'; valid: {string.Join(", ", BuiltinNames)}; dataset presets ({string.Join(", ", SimKO.Data.Math.Datasets.Names)}, bbh) need a model folder with its tokenizer"),
    };

    /// <summary>A math dataset preset with the model's tokenizer: prompts from a template, rewards from
    /// the math grader on the decoded response. Training uses the preset's train split when it has one.</summary>
    public static TaskBinding Preset(string preset, ITokenizer tok, string template, int maxNewTokens, string? datasetRoot = null, bool skipBadRows = false)
    {
        var skipped = new List<string>();
        IReadOnlyList<SimKO.Data.Math.MathProblem> Load(string split)
        {
            var loaded = SimKO.Data.Math.Datasets.LoadWithReport(preset, datasetRoot, split, skipBadRows);
            skipped.AddRange(loaded.Skipped);
            return loaded.Problems;
        }
        var test = Load("test");
        // a preset without a train split (all but gsm8k) trains on its test problems
        var train = File.Exists(SimKO.Data.Math.Datasets.PathOf(preset, datasetRoot, "train")) ? Load("train") : test;
        return Math(preset, train, test, tok, template, maxNewTokens) with { SkippedRows = skipped };
    }

    /// <summary>Logs every skipped row and lists them in <c>&lt;out&gt;/skipped_rows.txt</c> (nothing is dropped silently).</summary>
    public static void ReportSkipped(IEnumerable<TaskBinding> tasks, string outDir, ILogger log)
    {
        var all = tasks.SelectMany(t => t.SkippedRows).ToList();
        if (all.Count == 0) return;
        foreach (var row in all) log.LogWarning("skipped row: {Reason}", row);
        Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllText(Path.Combine(outDir, "skipped_rows.txt"), string.Join("\n", all) + "\n");
        log.LogWarning("{Count} bad rows skipped (listed in {Out}/skipped_rows.txt)", all.Count, outDir);
    }

    /// <summary>Math problems (from a preset or any file) with the model's tokenizer and the math grader.</summary>
    public static TaskBinding Math(string name, IReadOnlyList<SimKO.Data.Math.MathProblem> train, IReadOnlyList<SimKO.Data.Math.MathProblem> test,
        ITokenizer tok, string template, int maxNewTokens)
    {
        TextProblem Of(SimKO.Data.Math.MathProblem p) => new(p.Id, p.Question, response =>
        {
            var (extracted, ok) = SimKO.Data.Math.MathGrader.Grade(response, p.Answer);
            return (ok, extracted);
        });
        return Text(name, train.Select(Of).ToList(), ReferenceEquals(train, test) ? null : test.Select(Of).ToList(), tok, template, maxNewTokens);
    }

    /// <summary>One BIG-Bench Hard task (evaluation; it has no train split, so training would use its examples),
    /// prompted like the math sets and scored the BBH way.</summary>
    public static TaskBinding Bbh(string bbhTask, ITokenizer tok, string template, int maxNewTokens, string? datasetRoot = null)
    {
        var problems = SimKO.Data.Logic.Bbh.Load(bbhTask, datasetRoot)
            .Select(p => new TextProblem(p.Id, p.Input, response =>
            {
                var (extracted, ok) = SimKO.Data.Logic.Bbh.Grade(response, p.Target);
                return (ok, extracted is null ? null : SimKO.Data.Logic.Bbh.Normalize(extracted));
            })).ToList();
        return Text($"bbh/{bbhTask}", problems, null, tok, template, maxNewTokens);
    }

    /// <summary>The evaluation tasks a name selects: a built-in task, <c>bbh</c> (its 27 tasks, reported
    /// one by one and averaged), <c>bbh/&lt;task&gt;</c>, or a math preset.</summary>
    public static IReadOnlyList<TaskBinding> ForEval(string name, Func<ITokenizer> tokenizer, string template, int maxNewTokens, string? datasetRoot = null, bool skipBadRows = false)
    {
        if (IsBuiltin(name)) return [Create(name)];
        if (SimKO.Data.Logic.Bbh.IsBbh(name))
        {
            var tok = tokenizer();
            return SimKO.Data.Logic.Bbh.Select(name).Select(t => Bbh(t, tok, template, maxNewTokens, datasetRoot)).ToList();
        }
        return [Preset(name, tokenizer(), template, maxNewTokens, datasetRoot, skipBadRows)];
    }

    /// <summary>A question with a grader of a decoded response: (correct?, the extracted answer for maj@n).</summary>
    sealed record TextProblem(string Id, string Question, Func<string, (bool Correct, string? Answer)> Judge);

    /// <summary>Text problems for a general model: prompts from a template around the question, the
    /// reward and the judge from a grader of the decoded response (up to the end or pad token).
    /// With no separate test list (a set without a train split), both sides share one encoding.</summary>
    static TaskBinding Text(string name, IReadOnlyList<TextProblem> train, IReadOnlyList<TextProblem>? test,
        ITokenizer tok, string template, int maxNewTokens)
    {
        var prompt = SimKO.Data.Math.Prompts.ByName(template);
        var stops = new[] { tok.EosId, tok.PadId };
        string Response(int[] ids) => tok.Decode(ids.TakeWhile(i => !stops.Contains(i)));
        var trainIds = train.Select(p => tok.Encode(prompt(p.Question))).ToList();
        var testIds = test is null ? trainIds : test.Select(p => tok.Encode(prompt(p.Question))).ToList();
        return new TaskBinding
        {
            Name = name,
            Tokenizer = tok,
            Train = train.Select((p, i) => new TrainProblem(p.Id, trainIds[i], ids => p.Judge(Response(ids)).Correct ? 1.0 : 0.0)).ToList(),
            Test = (test ?? train).Select((p, i) => new EvalProblem(p.Id, testIds[i], ids => p.Judge(Response(ids)))).ToList(),
            Example = (_, _) => throw new NotSupportedException($"{name} has no supervised warm-start examples"),
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
