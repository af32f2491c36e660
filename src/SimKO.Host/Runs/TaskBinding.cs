using Microsoft.Extensions.Logging;
using SimKO.Data.Chat;
using SimKO.Data.Rewards;
using SimKO.Data.Tasks;
using SimKO.Data.Tokenizers;
using SimKO.Host.Evaluation;
using SimKO.Cli;
using SimKO.Host.Training;

namespace SimKO.Host.Runs;

/// <summary>A user reward function (<c>reward_fn</c>) for dataset tasks, whether a failing sample stops the run
/// (<c>reward_errors=fail</c>) or counts as 0 with a warning (<c>warn</c>), and where warnings go.</summary>
public sealed record UserReward(RewardFunction Function, bool FailOnError, Action<string> Warn)
{
    /// <summary>The run's reward function (null: the built-in verifiers), its warnings logged.</summary>
    public static UserReward? Of(Microsoft.FSharp.Core.FSharpOption<RunSpec.RewardFn>? spec, ILogger log)
    {
        if (spec is null) return null;
        var r = spec.Value;
        var fn = RewardFunction.Load(r.Function);
        log.LogInformation("reward_fn {Function} (reward_errors={Errors}) scores the dataset tasks in the sandbox", fn, RunSpec.rewardErrorsName(r.Errors));
        return new UserReward(fn, r.Errors.IsFailOnError, w => log.LogWarning("{Warning}", w));
    }
}

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
    /// <summary>The metrics of the training rewards judged by the last prefetch (a reward function's
    /// <c>reward/&lt;key&gt;</c> means and <c>reward/errors</c>); null when the task has none.</summary>
    public Func<IReadOnlyDictionary<string, double>>? TrainRewardMetrics { get; init; }
    /// <summary>The reward function's results for (test problem index, response) pairs, in their order (judged
    /// once and cached with the verdicts): evaluation reduces them to <c>reward/&lt;key&gt;</c> metrics over every
    /// sample. Null when the task has no reward function.</summary>
    public Func<IReadOnlyList<(int Problem, int[] Response)>, IReadOnlyList<RewardResult>>? TestRewardResults { get; init; }

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
    /// the model's tokenizer); <paramref name="chat"/> gives the model's chat template (prompt template "chat"
    /// renders dataset prompts with it).</summary>
    public static TaskBinding ForTraining(RunSpec.TaskSource source, Func<ITokenizer> tokenizer, RunSpec.PromptTemplate template, int maxNewTokens, bool skipBadRows,
        Func<ChatTemplate>? chat = null, UserReward? reward = null) => source switch
    {
        RunSpec.TaskSource.Builtin b => NoReward(reward, RunSpec.builtinName(b.Item), Create(b.Item)),
        RunSpec.TaskSource.Preset p => Preset(p.Item, tokenizer(), template, maxNewTokens, skipBadRows: skipBadRows, chat: chat, reward: reward),
        RunSpec.TaskSource.File f => File(f.Item, tokenizer(), template, maxNewTokens, skipBadRows, chat, reward),
        RunSpec.TaskSource.Code c => NoReward(reward, "a code task", Code(c.path?.Value, tokenizer(), maxNewTokens)),
        _ => throw new ArgumentOutOfRangeException(nameof(source)),
    };

    /// <summary>Problems of a JSONL or Parquet file, graded by the math grader; train and test are the same set.</summary>
    public static TaskBinding File(RunSpec.DataFile file, ITokenizer tok, RunSpec.PromptTemplate template, int maxNewTokens, bool skipBadRows, Func<ChatTemplate>? chat = null, UserReward? reward = null)
    {
        var loaded = SimKO.Data.Math.Datasets.LoadFile(file.Path, FieldsOf(file), skipBadRows);
        var name = RunSpec.taskName(RunSpec.TaskSource.NewFile(file));
        return Math(name, loaded.Problems, loaded.Problems, tok, template, maxNewTokens, chat, reward) with { SkippedRows = loaded.Skipped, DataFormat = loaded.Format is null ? null : $"{file.Path}: {loaded.Format}" };
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
        var format = file.Format.Tag switch
        {
            RunSpec.DataFormat.Tags.VerlFormat => SimKO.Data.Math.DataFormat.Verl,
            RunSpec.DataFormat.Tags.FlatFormat => SimKO.Data.Math.DataFormat.Fields,
            _ => SimKO.Data.Math.DataFormat.Auto,
        };
        return file.Question switch
        {
            RunSpec.QuestionSource.QuestionFields q => new SimKO.Data.Math.FieldOptions([.. q.Item], file.AnswerField, from) { Format = format },
            RunSpec.QuestionSource.QuestionTemplate t => SimKO.Data.Math.FieldOptions.FromTemplate(SimKO.Data.Math.QuestionTemplate.Parse(t.Item), file.AnswerField, from) with { Format = format },
            _ => throw new ArgumentOutOfRangeException(nameof(file), "an unknown question source"),
        };
    }

    /// <summary>A math dataset preset with the model's tokenizer: prompts from a template, rewards from
    /// the math grader on the decoded response. Training uses the preset's train split when it has one.</summary>
    public static TaskBinding Preset(string preset, ITokenizer tok, RunSpec.PromptTemplate template, int maxNewTokens, string? datasetRoot = null, bool skipBadRows = false, Func<ChatTemplate>? chat = null, UserReward? reward = null)
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
        return Math(preset, train, test, tok, template, maxNewTokens, chat, reward) with { SkippedRows = skipped };
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
        ITokenizer tok, RunSpec.PromptTemplate template, int maxNewTokens, Func<ChatTemplate>? chat = null, UserReward? reward = null)
    {
        TextProblem Of(SimKO.Data.Math.MathProblem p) => new(p.Id, p.Question, response =>
        {
            var (extracted, ok) = SimKO.Data.Math.MathGrader.Grade(response, p.Answer);
            return (ok, extracted);
        }) { Messages = p.Messages, Answer = p.Answer, DataSource = p.DataSource, ExtraInfoJson = p.ExtraInfoJson };
        return Text(name, train.Select(Of).ToList(), ReferenceEquals(train, test) ? null : test.Select(Of).ToList(), tok, template, maxNewTokens, chat, reward);
    }

    /// <summary>One BIG-Bench Hard task (evaluation; it has no train split, so training would use its examples),
    /// prompted like the math sets and scored the BBH way.</summary>
    public static TaskBinding Bbh(string bbhTask, ITokenizer tok, RunSpec.PromptTemplate template, int maxNewTokens, string? datasetRoot = null, Func<ChatTemplate>? chat = null, UserReward? reward = null)
    {
        var problems = SimKO.Data.Logic.Bbh.Load(bbhTask, datasetRoot)
            .Select(p => new TextProblem(p.Id, p.Input, response =>
            {
                var (extracted, ok) = SimKO.Data.Logic.Bbh.Grade(response, p.Target);
                return (ok, extracted is null ? null : SimKO.Data.Logic.Bbh.Normalize(extracted));
            }) { Answer = p.Target }).ToList();
        return Text($"bbh/{bbhTask}", problems, null, tok, template, maxNewTokens, chat, reward);
    }

    /// <summary>The evaluation tasks of a benchmark: a built-in task, BBH (its 27 tasks, reported one by
    /// one and averaged, or one of them), a math preset, or a data file.</summary>
    public static IReadOnlyList<TaskBinding> ForEval(RunSpec.EvalTask task, Func<ITokenizer> tokenizer, RunSpec.PromptTemplate template, int maxNewTokens, string? datasetRoot = null, bool skipBadRows = false,
        Func<ChatTemplate>? chat = null, UserReward? reward = null) => task switch
    {
        RunSpec.EvalTask.EvalBuiltin b => [NoReward(reward, RunSpec.builtinName(b.Item), Create(b.Item))],
        RunSpec.EvalTask.EvalBbh b => SimKO.Data.Logic.Bbh.Select(b.Item is null ? "bbh" : $"bbh/{b.Item.Value}")
            .Select(t => Bbh(t, tokenizer(), template, maxNewTokens, datasetRoot, chat, reward)).ToList(),
        RunSpec.EvalTask.EvalPreset p => [Preset(p.Item, tokenizer(), template, maxNewTokens, datasetRoot, skipBadRows, chat, reward)],
        RunSpec.EvalTask.EvalFile f => [File(f.Item, tokenizer(), template, maxNewTokens, skipBadRows, chat, reward)],
        RunSpec.EvalTask.EvalCode c => [NoReward(reward, "a code task", Code(c.path?.Value, tokenizer(), maxNewTokens))],
        _ => throw new ArgumentOutOfRangeException(nameof(task)),
    };

    /// <summary>The binding, or an error when a reward function was given for a task it cannot score.</summary>
    static TaskBinding NoReward(UserReward? reward, string task, TaskBinding binding) => reward is null ? binding
        : throw new ArgumentException($"reward_fn ({reward.Function}) scores dataset tasks (presets, data_path, BBH); {task} has its own verifier");

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
        /// <summary>What a reward function gets: the reference answer (ground_truth), verl's data_source and extra_info.</summary>
        public string? Answer { get; init; }
        public string? DataSource { get; init; }
        public string? ExtraInfoJson { get; init; }
    }

    /// <summary>The prompt texts of problems. "chat": the model's chat template (rendered by Jinja in the
    /// sandbox, once per distinct message list) over the problem's messages, or over one user message with the
    /// question and the instruction. "plain": the plain template around the question, or the messages'
    /// contents one after another.</summary>
    public static string[] PromptTexts(IReadOnlyList<(string Question, IReadOnlyList<SimKO.Data.Math.ChatMessage>? Messages)> problems,
        RunSpec.PromptTemplate template, Func<ChatTemplate>? chat)
    {
        if (template.IsPlain)
            return problems.Select(p => p.Messages is null ? SimKO.Data.Math.Prompts.Plain(p.Question) : string.Join("\n\n", p.Messages.Select(m => m.Content))).ToArray();
        if (problems.Count == 0) return [];
        var t = (chat ?? throw new ArgumentException("template=chat renders prompts with the model's chat template, and this task has no model folder; use template=plain"))();
        return t.RenderMany(SharedSandbox.Pool, problems.Select(p => p.Messages ?? SimKO.Data.Math.Prompts.ChatMessages(p.Question)).ToList());
    }

    /// <summary>Text problems for a general model: prompts from a template around the question, the
    /// reward and the judge from a grader of the decoded response (up to the end or pad token).
    /// With no separate test list (a set without a train split), both sides share one encoding.</summary>
    static TaskBinding Text(string name, IReadOnlyList<TextProblem> train, IReadOnlyList<TextProblem>? test,
        ITokenizer tok, RunSpec.PromptTemplate template, int maxNewTokens, Func<ChatTemplate>? chat, UserReward? reward)
    {
        var stops = new[] { tok.EosId, tok.PadId };
        string Response(int[] ids) => tok.Decode(ids.TakeWhile(i => !stops.Contains(i)));
        List<int[]> Ids(IReadOnlyList<TextProblem> ps) => PromptTexts(ps.Select(p => (p.Question, p.Messages)).ToList(), template, chat).Select(tok.Encode).ToList();
        var trainIds = Ids(train);
        var testIds = test is null ? trainIds : Ids(test);
        var binding = new TaskBinding
        {
            Name = name,
            Tokenizer = tok,
            Train = train.Select((p, i) => new TrainProblem(p.Id, trainIds[i], ids => p.Judge(Response(ids)).Correct ? 1.0 : 0.0)).ToList(),
            Test = (test ?? train).Select((p, i) => new EvalProblem(p.Id, testIds[i], ids => p.Judge(Response(ids)))).ToList(),
            Example = (_, _) => throw new NotSupportedException($"{name} has no supervised warm-start examples"),
            MaxNewTokens = maxNewTokens,
            StopTokenIds = stops,
        };
        if (reward is null) return binding;
        // reward_fn: the user's function scores every response (correct = a score above 0); the built-in grader still extracts the maj@n vote
        var onTrain = new UserScores(reward, name, train, Response);
        var onTest = test is null ? onTrain : new UserScores(reward, name, test, Response);
        return binding with
        {
            Train = train.Select((p, i) => new TrainProblem(p.Id, trainIds[i], ids => onTrain.Score(i, ids))).ToList(),
            Test = (test ?? train).Select((p, i) => new EvalProblem(p.Id, testIds[i], ids => (onTest.Score(i, ids) > 0, p.Judge(Response(ids)).Answer))).ToList(),
            PrefetchTrain = onTrain.Prefetch,
            PrefetchTest = onTest.Prefetch,
            TrainRewardMetrics = () => onTrain.LastMetrics,
            TestRewardResults = onTest.Results,
        };
    }

    /// <summary>A user reward function over a task's problems: a prefetch scores a step's (problem, response)
    /// pairs in one call to the sandbox pool (one batch per worker) and keeps the results; each error is a
    /// warning and a 0, or ends the run (<see cref="UserReward.FailOnError"/>); the metrics of the last prefetch
    /// (<c>reward/&lt;key&gt;</c> means, <c>reward/errors</c>) are kept for the step's metrics.</summary>
    sealed class UserScores(UserReward reward, string taskName, IReadOnlyList<TextProblem> problems, Func<int[], string> response)
    {
        readonly System.Collections.Concurrent.ConcurrentDictionary<(int Problem, string Response), RewardResult> _done = new();
        public IReadOnlyDictionary<string, double> LastMetrics { get; private set; } = new Dictionary<string, double>();

        RewardSample Sample(int problem, string text)
        {
            var p = problems[problem];
            return new RewardSample(p.DataSource ?? taskName, text, p.Answer ?? "", p.ExtraInfoJson);
        }

        public void Prefetch(IReadOnlyList<(int Problem, int[] Response)> items)
        {
            var keys = items.Select(x => (x.Problem, response(x.Response))).ToList();
            var todo = keys.Distinct().Where(k => !_done.ContainsKey(k)).ToList();
            if (todo.Count > 0)
            {
                if (_done.Count > 200_000) _done.Clear();
                var results = reward.Function.Score(SharedSandbox.Pool, todo.Select(k => Sample(k.Item1, k.Item2)).ToList());
                // the first few warnings of a batch, then their count (reward/errors counts the failed samples too)
                int shown = 0;
                RewardFunction.Scores(results, reward.FailOnError, w => { if (shown++ < 5) reward.Warn(w); });
                if (shown > 5) reward.Warn($"… and {shown - 5} more reward_fn warnings for this batch of {todo.Count} responses");
                for (int i = 0; i < todo.Count; i++) _done[todo[i]] = results[i];
            }
            LastMetrics = RewardFunction.Metrics(keys.Select(k => _done.TryGetValue(k, out var r) ? r : null).OfType<RewardResult>().ToList());
        }

        /// <summary>The results of these pairs, in order (scored now when not cached).</summary>
        public IReadOnlyList<RewardResult> Results(IReadOnlyList<(int Problem, int[] Response)> items)
        {
            Prefetch(items);
            return items.Select(x => _done.TryGetValue((x.Problem, response(x.Response)), out var r) ? r
                : throw new InvalidOperationException($"{taskName}: problem {x.Problem}'s response was not scored")).ToList();
        }

        public double Score(int problem, int[] ids)
        {
            var key = (problem, response(ids));
            if (!_done.TryGetValue(key, out var r))
            {
                Prefetch([(problem, ids)]);
                r = _done[key];
            }
            return r.Score;
        }
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
