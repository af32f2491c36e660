using Microsoft.Extensions.Logging;
using SimKO.Data.Tasks;
using SimKO.Data.Tokenizers;
using SimKO.Host.Evaluation;
using SimKO.Cli;
using SimKO.Host.Training;

namespace SimKO.Host.Runs;

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
    /// <summary>Texts that end a response (code: the end of the function), kept in the response.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Judges many (train problem index, response) pairs at once before their rewards are read
    /// (tasks that grade by running code do it in parallel in the sandbox and cache the verdicts).</summary>
    public Action<IReadOnlyList<(int Problem, int[] Response)>>? PrefetchTrain { get; init; }
    /// <summary>The same for test problems (by index into <see cref="Test"/>).</summary>
    public Action<IReadOnlyList<(int Problem, int[] Response)>>? PrefetchTest { get; init; }
    /// <summary>Rows of the task's files that were skipped as bad (only when asked to skip), each with file, line and reason.</summary>
    public IReadOnlyList<string> SkippedRows { get; init; } = [];
    /// <summary>How the task's file was read when that was detected (verl's format), for the log.</summary>
    public string? DataFormat { get; init; }
    /// <summary>Longest prompt + response in tokens, when the task knows it (built-in tasks).</summary>
    public int? MaxSequenceLength { get; init; }

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

    /// <summary>A built-in task with its character tokenizer.</summary>
    public static TaskBinding Create(RunSpec.BuiltinTask task) => task.Tag switch
    {
        RunSpec.BuiltinTask.Tags.Countdown => Builtin(new Countdown()),
        RunSpec.BuiltinTask.Tags.Order => Builtin(new OrderingPuzzle()),
        RunSpec.BuiltinTask.Tags.WordMath => Builtin(new WordProblems()),
        RunSpec.BuiltinTask.Tags.Program => Program(),
        _ => throw new ArgumentOutOfRangeException(nameof(task), RunSpec.builtinName(task), "a built-in task without a binding"),
    };

    /// <summary>The training task of a run: a built-in task, a preset or a data file (the last two with
    /// the model's tokenizer).</summary>
    public static TaskBinding ForTraining(RunSpec.TaskSource source, Func<ITokenizer> tokenizer, RunSpec.PromptTemplate template, int maxNewTokens, bool skipBadRows) => source switch
    {
        RunSpec.TaskSource.Builtin b => Create(b.Item),
        RunSpec.TaskSource.Preset p => Preset(p.Item, tokenizer(), template, maxNewTokens, skipBadRows: skipBadRows),
        RunSpec.TaskSource.File f => File(f.Item, tokenizer(), template, maxNewTokens, skipBadRows),
        RunSpec.TaskSource.Code c => Code(c.path?.Value, tokenizer(), maxNewTokens),
        _ => throw new ArgumentOutOfRangeException(nameof(source)),
    };

    /// <summary>Problems of a JSONL or Parquet file, graded by the math grader; train and test are the same set.</summary>
    public static TaskBinding File(RunSpec.DataFile file, ITokenizer tok, RunSpec.PromptTemplate template, int maxNewTokens, bool skipBadRows)
    {
        var loaded = SimKO.Data.Math.Datasets.LoadFile(file.Path, FieldsOf(file), skipBadRows);
        var name = RunSpec.taskName(RunSpec.TaskSource.NewFile(file));
        return Math(name, loaded.Problems, loaded.Problems, tok, template, maxNewTokens) with { SkippedRows = loaded.Skipped, DataFormat = loaded.Format is null ? null : $"{file.Path}: {loaded.Format}" };
    }

    /// <summary>How the data layer reads a file's fields.</summary>
    static SimKO.Data.Math.FieldOptions FieldsOf(RunSpec.DataFile file)
    {
        var from = file.AnswerFrom.Tag switch
        {
            RunSpec.AnswerSource.Tags.BoxedInSolution => SimKO.Data.Math.AnswerFrom.BoxedInSolution,
            RunSpec.AnswerSource.Tags.AfterHashes => SimKO.Data.Math.AnswerFrom.AfterHashes,
            _ => SimKO.Data.Math.AnswerFrom.Answer,
        };
        return file.Question switch
        {
            RunSpec.QuestionSource.QuestionFields q => new SimKO.Data.Math.FieldOptions([.. q.Item], file.AnswerField, from),
            RunSpec.QuestionSource.QuestionTemplate t => SimKO.Data.Math.FieldOptions.FromTemplate(SimKO.Data.Math.QuestionTemplate.Parse(t.Item), file.AnswerField, from),
            _ => throw new ArgumentOutOfRangeException(nameof(file), "an unknown question source"),
        };
    }

    /// <summary>A math dataset preset with the model's tokenizer: prompts from a template, rewards from
    /// the math grader on the decoded response. Training uses the preset's train split when it has one.</summary>
    public static TaskBinding Preset(string preset, ITokenizer tok, RunSpec.PromptTemplate template, int maxNewTokens, string? datasetRoot = null, bool skipBadRows = false)
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
        var train = System.IO.File.Exists(SimKO.Data.Math.Datasets.PathOf(preset, datasetRoot, "train")) ? Load("train") : test;
        return Math(preset, train, test, tok, template, maxNewTokens) with { SkippedRows = skipped };
    }

    /// <summary>Logs every skipped row and lists them in <c>&lt;out&gt;/skipped_rows.txt</c> (nothing is dropped silently).</summary>
    public static void ReportSkipped(IEnumerable<TaskBinding> tasks, string outDir, ILogger log)
    {
        var list = tasks.ToList();
        foreach (var t in list.Where(t => t.DataFormat is not null)) log.LogInformation("{Format}", t.DataFormat);
        var all = list.SelectMany(t => t.SkippedRows).ToList();
        if (all.Count == 0) return;
        foreach (var row in all) log.LogWarning("skipped row: {Reason}", row);
        Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllText(Path.Combine(outDir, "skipped_rows.txt"), string.Join("\n", all) + "\n");
        log.LogWarning("{Count} bad rows skipped (listed in {Out}/skipped_rows.txt)", all.Count, outDir);
    }

    /// <summary>Math problems (from a preset or any file) with the model's tokenizer and the math grader.</summary>
    public static TaskBinding Math(string name, IReadOnlyList<SimKO.Data.Math.MathProblem> train, IReadOnlyList<SimKO.Data.Math.MathProblem> test,
        ITokenizer tok, RunSpec.PromptTemplate template, int maxNewTokens)
    {
        TextProblem Of(SimKO.Data.Math.MathProblem p) => new(p.Id, p.Question, response =>
        {
            var (extracted, ok) = SimKO.Data.Math.MathGrader.Grade(response, p.Answer);
            return (ok, extracted);
        }) { Messages = p.Messages };
        return Text(name, train.Select(Of).ToList(), ReferenceEquals(train, test) ? null : test.Select(Of).ToList(), tok, template, maxNewTokens);
    }

    /// <summary>One BIG-Bench Hard task (evaluation; it has no train split, so training would use its examples),
    /// prompted like the math sets and scored the BBH way.</summary>
    public static TaskBinding Bbh(string bbhTask, ITokenizer tok, RunSpec.PromptTemplate template, int maxNewTokens, string? datasetRoot = null)
    {
        var problems = SimKO.Data.Logic.Bbh.Load(bbhTask, datasetRoot)
            .Select(p => new TextProblem(p.Id, p.Input, response =>
            {
                var (extracted, ok) = SimKO.Data.Logic.Bbh.Grade(response, p.Target);
                return (ok, extracted is null ? null : SimKO.Data.Logic.Bbh.Normalize(extracted));
            })).ToList();
        return Text($"bbh/{bbhTask}", problems, null, tok, template, maxNewTokens);
    }

    /// <summary>The evaluation tasks of a benchmark: a built-in task, BBH (its 27 tasks, reported one by
    /// one and averaged, or one of them), a math preset, or a data file.</summary>
    public static IReadOnlyList<TaskBinding> ForEval(RunSpec.EvalTask task, Func<ITokenizer> tokenizer, RunSpec.PromptTemplate template, int maxNewTokens, string? datasetRoot = null, bool skipBadRows = false) => task switch
    {
        RunSpec.EvalTask.EvalBuiltin b => [Create(b.Item)],
        RunSpec.EvalTask.EvalBbh b => SimKO.Data.Logic.Bbh.Select(b.Item is null ? "bbh" : $"bbh/{b.Item.Value}")
            .Select(t => Bbh(t, tokenizer(), template, maxNewTokens, datasetRoot)).ToList(),
        RunSpec.EvalTask.EvalPreset p => [Preset(p.Item, tokenizer(), template, maxNewTokens, datasetRoot, skipBadRows)],
        RunSpec.EvalTask.EvalFile f => [File(f.Item, tokenizer(), template, maxNewTokens, skipBadRows)],
        RunSpec.EvalTask.EvalCode c => [Code(c.path?.Value, tokenizer(), maxNewTokens)],
        _ => throw new ArgumentOutOfRangeException(nameof(task)),
    };

    /// <summary>The program-synthesis task: answers verified by running them in the sandbox (in
    /// parallel, once per distinct answer, when prefetched).</summary>
    static TaskBinding Program()
    {
        var task = new ProgramTask(pool: SharedSandbox.IsUnisolated ? SharedSandbox.Pool : null);
        var binding = Builtin(task);
        var tok = binding.Tokenizer;
        string Answer(int[] ids) => tok.Decode(ids.TakeWhile(i => i != tok.EosId));
        return binding with
        {
            // warm-start examples from the whole train function space at fresh points (ProgramTask.DrawTraining)
            Example = (rng, pCorrect) =>
            {
                var p = task.DrawTraining(rng, task.Settings.MaxSquare);
                var answer = rng.NextDouble() < pCorrect ? task.SampleCorrect(p, rng) : task.SampleWrong(p, rng);
                return (tok.Encode(task.Prompt(p)), [.. tok.Encode(answer), tok.EosId]);
            },
            PrefetchTrain = items => task.JudgeMany(items.Select(x => (task.Train[x.Problem], Answer(x.Response))).ToList()),
            PrefetchTest = items => task.JudgeMany(items.Select(x => (task.Test[x.Problem], Answer(x.Response))).ToList()),
        };
    }

    /// <summary>Code problems in HumanEval's format with the model's tokenizer: the prompt is the function's
    /// signature and docstring (the model continues it), a response ends at the end of the function, and its
    /// reward is whether the problem's unit tests pass in the sandbox.</summary>
    public static TaskBinding Code(string? path, ITokenizer tok, int maxNewTokens)
    {
        var problems = SimKO.Data.Code.HumanEval.Load(path);
        var grader = new SimKO.Data.Code.HumanEvalGrader(problems, SharedSandbox.Pool);
        var stops = new[] { tok.EosId, tok.PadId };
        var verdicts = new System.Collections.Concurrent.ConcurrentDictionary<(string TaskId, string Completion), bool>();
        string Completion(int[] ids) => SimKO.Data.Code.CodePrompt.Truncate(tok.Decode(ids.TakeWhile(i => !stops.Contains(i))));
        void Prefetch(IEnumerable<(string TaskId, int[] Response)> items)
        {
            var todo = items.Select(x => new SimKO.Data.Code.CodeSample(x.TaskId, Completion(x.Response)))
                .Where(s => !verdicts.ContainsKey((s.TaskId, s.Completion))).DistinctBy(s => (s.TaskId, s.Completion)).ToList();
            if (todo.Count == 0) return;
            if (verdicts.Count > 200_000) verdicts.Clear();
            var results = grader.Grade(todo);
            for (int i = 0; i < todo.Count; i++)
                if (results[i].Outcome != SimKO.Data.Sandbox.Outcome.SandboxError) verdicts[(todo[i].TaskId, todo[i].Completion)] = results[i].Passed;
        }
        bool Passed(string taskId, int[] response)
        {
            var key = (taskId, Completion(response));
            if (!verdicts.TryGetValue(key, out var ok)) { Prefetch([(taskId, response)]); ok = verdicts.GetValueOrDefault(key); }
            return ok;
        }
        var ids = problems.Select(p => tok.Encode(SimKO.Data.Code.CodePrompt.Format(p))).ToList();
        var name = path is null ? "humaneval" : RunSpec.taskName(RunSpec.TaskSource.NewCode(path));
        return new TaskBinding
        {
            Name = name,
            Tokenizer = tok,
            Train = problems.Select((p, i) => new TrainProblem(p.TaskId, ids[i], r => Passed(p.TaskId, r) ? 1.0 : 0.0)).ToList(),
            Test = problems.Select((p, i) => new EvalProblem(p.TaskId, ids[i], r => (Passed(p.TaskId, r), (string?)null))).ToList(),
            Example = (_, _) => throw new NotSupportedException($"{name} has no supervised warm-start examples"),
            MaxNewTokens = maxNewTokens,
            StopTokenIds = stops,
            StopStrings = SimKO.Data.Code.CodePrompt.StopSequences,
            PrefetchTrain = items => Prefetch(items.Select(x => (problems[x.Problem].TaskId, x.Response))),
            PrefetchTest = items => Prefetch(items.Select(x => (problems[x.Problem].TaskId, x.Response))),
        };
    }

    /// <summary>A question with a grader of a decoded response: (correct?, the extracted answer for maj@n).</summary>
    sealed record TextProblem(string Id, string Question, Func<string, (bool Correct, string? Answer)> Judge)
    {
        /// <summary>The prompt as messages (verl's format): rendered as they are, without the template's instruction.</summary>
        public IReadOnlyList<SimKO.Data.Math.ChatMessage>? Messages { get; init; }
    }

    /// <summary>The prompt text of a problem: the template around the question, or a list of messages
    /// in the chat markup ("chat") or their contents one after another ("plain").</summary>
    public static string PromptText(string question, IReadOnlyList<SimKO.Data.Math.ChatMessage>? messages, RunSpec.PromptTemplate template)
    {
        var name = RunSpec.templateName(template);
        if (messages is null) return SimKO.Data.Math.Prompts.ByName(name)(question);
        return name == "plain" ? string.Join("\n\n", messages.Select(m => m.Content))
            : ChatTemplate.ChatML(messages.Select(m => (m.Role, m.Content)));
    }

    /// <summary>Text problems for a general model: prompts from a template around the question, the
    /// reward and the judge from a grader of the decoded response (up to the end or pad token).
    /// With no separate test list (a set without a train split), both sides share one encoding.</summary>
    static TaskBinding Text(string name, IReadOnlyList<TextProblem> train, IReadOnlyList<TextProblem>? test,
        ITokenizer tok, RunSpec.PromptTemplate template, int maxNewTokens)
    {
        var stops = new[] { tok.EosId, tok.PadId };
        string Response(int[] ids) => tok.Decode(ids.TakeWhile(i => !stops.Contains(i)));
        var trainIds = train.Select(p => tok.Encode(PromptText(p.Question, p.Messages, template))).ToList();
        var testIds = test is null ? trainIds : test.Select(p => tok.Encode(PromptText(p.Question, p.Messages, template))).ToList();
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
