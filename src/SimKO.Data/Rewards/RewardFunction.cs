using System.Globalization;
using System.Text.Json.Nodes;
using SimKO.Data.Sandbox;

namespace SimKO.Data.Rewards;

/// <summary>One response to score, with verl's arguments: <c>data_source</c>, <c>solution_str</c>,
/// <c>ground_truth</c> and <c>extra_info</c> (a JSON value, or null).</summary>
public sealed record RewardSample(string DataSource, string SolutionStr, string GroundTruth, string? ExtraInfoJson = null);

/// <summary>A sample's score and the numeric extra keys of a returned dict, or the error that makes
/// it count as 0: the file, the traceback's line and the message, and which sample.</summary>
public sealed record RewardResult(double Score, IReadOnlyDictionary<string, double> Extra, string? Error, IReadOnlyList<string> NotNumbers)
{
    public bool Failed => Error is not null;
}

/// <summary>A reward file that cannot be used at all (missing, does not compile, no such function),
/// or a sample's error with <c>reward_errors=fail</c>.</summary>
public sealed class RewardFunctionException : ArgumentException
{
    public RewardFunctionException(string message) : base(message) { }
}

/// <summary>
/// A user reward function in Python with verl's signature,
/// <c>compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float | {"score": float, …}</c>,
/// named <c>path.py</c> (function <c>compute_score</c>) or <c>path.py:name</c>. It runs in the code sandbox
/// (no network, a root of its own without the repository, the pool's limits): a step's samples are split
/// into one batch per worker, each batch scored by one fresh process that imports the file once. A
/// sample whose call raises, runs past the wall limit, prints past the output limit, or returns a
/// non-number or NaN gets an error naming the file, the traceback's line and the sample; the rest of
/// its batch goes on in a fresh process. The interpreter sees the system's <c>/usr</c> only, so the
/// modules available are the standard library and Debian's python3-* packages (e.g. python3-sympy).
/// </summary>
public sealed class RewardFunction
{
    public string Path { get; }
    public string Function { get; }
    readonly string _source;

    RewardFunction(string path, string function, string source) { Path = path; Function = function; _source = source; }

    /// <summary>Reads <c>path.py</c> or <c>path.py:name</c>; a missing file is an error naming it.</summary>
    public static RewardFunction Load(string spec)
    {
        string path = spec, function = "compute_score";
        int colon = spec.LastIndexOf(':');
        if (colon > 0 && spec[(colon + 1)..].All(c => char.IsLetterOrDigit(c) || c == '_') && colon < spec.Length - 1)
        {
            path = spec[..colon];
            function = spec[(colon + 1)..];
        }
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path)) throw new RewardFunctionException($"reward_fn: {path}: no such file");
        return new RewardFunction(path, function, File.ReadAllText(path));
    }

    /// <summary>Scores every sample in the pool, one batch per worker, in parallel; results in order.
    /// A file that cannot be loaded (syntax error, no such function, an error at import) throws.</summary>
    public RewardResult[] Score(SandboxPool pool, IReadOnlyList<RewardSample> samples)
    {
        var results = new RewardResult[samples.Count];
        if (samples.Count == 0) return results;
        int batches = System.Math.Min(pool.Settings.WorkerCount, samples.Count);
        int per = (samples.Count + batches - 1) / batches;
        var backstop = TimeSpan.FromSeconds(pool.Settings.WallSeconds * (per + 1) + 10);
        string? fatal = null;
        Parallel.For(0, batches, new ParallelOptions { MaxDegreeOfParallelism = batches }, b =>
        {
            int from = b * per, to = System.Math.Min(samples.Count, from + per);
            if (from >= to) return;
            var items = new JsonArray();
            for (int i = from; i < to; i++)
            {
                var s = samples[i];
                items.Add(new JsonObject
                {
                    ["data_source"] = s.DataSource,
                    ["solution_str"] = s.SolutionStr,
                    ["ground_truth"] = s.GroundTruth,
                    ["extra_info"] = s.ExtraInfoJson is null ? null : JsonNode.Parse(s.ExtraInfoJson),
                });
            }
            var answer = pool.Request(new JsonObject
            {
                ["kind"] = "reward", ["source"] = _source, ["filename"] = Path, ["function"] = Function, ["items"] = items,
            }, backstop);
            if (answer?["fatal"] is JsonValue f)
            {
                Interlocked.CompareExchange(ref fatal, $"reward_fn {Path}: cannot be used: {answer["line"]}: {f.GetValue<string>()}", null);
                return;
            }
            var list = answer?["results"] as JsonArray;
            for (int i = from; i < to; i++)
            {
                var r = list is not null && i - from < list.Count ? list[i - from] as JsonObject : null;
                results[i] = Read(r, i, samples[i]);
            }
        });
        if (fatal is not null) throw new RewardFunctionException(fatal);
        return results;
    }

    RewardResult Read(JsonObject? r, int index, RewardSample s)
    {
        string Sample() => $"sample {index} (data_source '{s.DataSource}', ground_truth '{Short(s.GroundTruth)}', response '{Short(s.SolutionStr)}')";
        if (r is null) return Error($"{Path}: the sandbox gave no answer for {Sample()}");
        if (r["error"] is JsonValue e) return Error($"{r["line"]}: {e.GetValue<string>()}; {Sample()}");
        var extra = new Dictionary<string, double>();
        if (r["extra"] is JsonObject x)
            foreach (var (k, v) in x) extra[k] = v!.GetValue<double>();
        var notes = (r["not_numbers"] as JsonArray)?.Select(n => n!.GetValue<string>()).ToList() ?? [];
        return new RewardResult(r["score"]!.GetValue<double>(), extra, null, notes);

        static RewardResult Error(string message) => new(0, new Dictionary<string, double>(), message, []);
    }

    static string Short(string s)
    {
        s = s.Replace("\n", "\\n");
        return s.Length <= 60 ? s : s[..57] + "...";
    }

    /// <summary>The means of the extra keys over the samples that returned them, as
    /// <c>reward/&lt;key&gt;</c> metrics, and the count of errors as <c>reward/errors</c>.</summary>
    public static Dictionary<string, double> Metrics(IReadOnlyList<RewardResult> results)
    {
        var m = results.SelectMany(r => r.Extra).GroupBy(kv => kv.Key)
            .ToDictionary(g => "reward/" + g.Key, g => g.Average(kv => kv.Value));
        m["reward/errors"] = results.Count(r => r.Failed);
        return m;
    }

    /// <summary>The scores, with each error a warning and a 0 (<paramref name="fail"/> false) or the
    /// end of the run (<paramref name="fail"/> true: throws with the first error).</summary>
    public static double[] Scores(IReadOnlyList<RewardResult> results, bool fail, Action<string> warn)
    {
        var first = results.FirstOrDefault(r => r.Failed);
        if (first is not null && fail) throw new RewardFunctionException($"reward_fn failed (reward_errors=fail): {first.Error}");
        foreach (var r in results.Where(r => r.Failed)) warn($"reward 0: {r.Error}");
        foreach (var k in results.SelectMany(r => r.NotNumbers).Distinct()) warn($"reward_fn returned a non-number under '{k}'; it is not a metric");
        return results.Select(r => r.Score).ToArray();
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Path}:{Function}");
}
