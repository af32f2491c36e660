using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using SimKO.Math;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Commands;

/// <summary>
/// `simko loss`: evaluates a method's loss, its gradient with respect to the logits and its
/// metrics on a JSON batch, in float64, so that users can check our losses against other
/// implementations. Advantages come from the method's own estimator over consecutive groups.
/// </summary>
public static class LossCommand
{
    public static int Run(string inputPath, string? outputPath)
    {
        string text;
        try { text = File.ReadAllText(inputPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: cannot read {inputPath}: {e.Message}");
            return 2;
        }
        JsonObject result;
        try { result = Evaluate(text); }
        catch (InputException e)
        {
            Console.Error.WriteLine($"error: {inputPath}: {e.Message}");
            return 2;
        }
        catch (JsonException e)
        {
            Console.Error.WriteLine($"error: {inputPath} is not valid JSON: {e.Message}");
            return 2;
        }
        var json = result.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
        if (outputPath is null) Console.WriteLine(json);
        else AtomicFile.WriteAllText(outputPath, json);
        return 0;
    }

    /// <summary>Evaluate one JSON batch (the command's input) and return the output object.</summary>
    public static JsonObject Evaluate(string json) => Evaluate(json, Methods.all);

    /// <summary>Evaluate one JSON batch against a list of methods (<c>Methods.all</c> in the shipped program).</summary>
    public static JsonObject Evaluate(string json, FSharpList<Methods.Method> methods)
    {
        var root = JsonNode.Parse(json) as JsonObject ?? throw new InputException("the top level must be a JSON object");
        var methodName = root["method"]?.GetValue<string>() ?? throw new InputException("missing field 'method'");
        var method = Methods.byNameIn(methods, methodName);
        if (method.IsError) throw new InputException(method.ErrorValue);
        var overrides = ReadSettings(root["settings"]);
        var configured = SimKO.Cli.MethodSettings.apply(overrides, method.ResultValue);
        if (configured.IsError) throw new InputException("settings: " + string.Join("; ", configured.ErrorValue));

        var logits = Read3(root, "logits");
        int b = logits.Length, t = logits[0].Length, v = logits[0][0].Length;
        var tokens = Read2(root, "tokens", b, t);
        var old = Read2(root, "old_logprobs", b, t);
        var mask = Read2(root, "mask", b, t);
        var rewards = Read1(root, "rewards", b);
        int groupSize = root["group_size"] is JsonValue g && g.TryGetValue<int>(out var gi) ? gi
            : throw new InputException("missing or non-integer field 'group_size'");
        if (groupSize < 1 || b % groupSize != 0)
            throw new InputException($"group_size = {groupSize} does not divide B = {b} rows (rows are grouped consecutively)");
        for (int i = 0; i < b; i++)
            for (int j = 0; j < t; j++)
            {
                if (mask[i][j] != 0 && mask[i][j] != 1) throw new InputException($"mask[{i}][{j}] = {mask[i][j]}: expected 0 or 1");
                var tok = tokens[i][j];
                if (mask[i][j] == 1 && (tok != System.Math.Floor(tok) || tok < 0 || tok >= v))
                    throw new InputException($"tokens[{i}][{j}] = {tok}: expected an integer in [0, V = {v})");
            }
        var problems = Methods.validate(groupSize, configured.ResultValue);
        if (!problems.IsEmpty) throw new InputException("settings: " + string.Join("; ", problems));
        var objective = Methods.objective(configured.ResultValue);
        double[][]? refLogp = root["ref_logprobs"] is null ? null : Read2(root, "ref_logprobs", b, t);

        using var scope = NewDisposeScope();
        var logitsT = tensor(logits.SelectMany(r => r.SelectMany(x => x)).ToArray(), [b, t, v], ScalarType.Float64).requires_grad_(true);
        var tokensT = tensor(tokens.SelectMany(r => r.Select(x => mask0(x))).ToArray(), [b, t], ScalarType.Int64);
        var advantages = Advantages.compute(objective.Advantage, groupSize, tensor(rewards, ScalarType.Float64));
        var maskT = Flat2(mask, b, t);
        var batch = new Objective.PolicyBatch(
            logitsT, tokensT, Flat2(old, b, t),
            refLogp is null ? FSharpOption<Tensor>.None : FSharpOption<Tensor>.Some(Flat2(refLogp, b, t)),
            maskT, advantages, Objective.selfContext(maskT));
        var output = Objective.loss(objective, batch);
        output.Loss.backward();
        var grad = logitsT.grad!.data<double>().ToArray();
        return new JsonObject
        {
            ["method"] = Methods.name(configured.ResultValue),
            ["loss"] = output.Loss.item<double>(),
            ["grad_logits"] = Nest(grad, b, t, v),
            ["advantages"] = new JsonArray(advantages.data<double>().ToArray().Select(x => (JsonNode?)x).ToArray()),
            ["metrics"] = Metrics(output.Metrics),
        };

        static long mask0(double x) => x >= 0 ? (long)x : 0;
    }

    /// <summary>The metrics under the names metrics.jsonl uses (Objective.metricValues), and the token count.</summary>
    static JsonObject Metrics(Objective.LossMetrics m)
    {
        var o = new JsonObject { ["tokens"] = m.Tokens };
        foreach (var (name, value) in Objective.metricValues(m)) o[name] = value;
        return o;
    }

    /// <summary>The batch's method settings as (name, text) pairs: numbers as written, strings as they are.</summary>
    static FSharpList<Tuple<string, string>> ReadSettings(JsonNode? node)
    {
        if (node is null) return FSharpList<Tuple<string, string>>.Empty;
        if (node is not JsonObject obj) throw new InputException("'settings' must be an object of name: value");
        var items = new List<Tuple<string, string>>();
        foreach (var (key, value) in obj)
        {
            string text = value switch
            {
                JsonValue jv when jv.GetValueKind() == JsonValueKind.Number => jv.ToJsonString(),
                JsonValue jv when jv.GetValueKind() is JsonValueKind.True or JsonValueKind.False => jv.ToJsonString(),
                JsonValue jv when jv.TryGetValue<string>(out var s) => s,
                _ => throw new InputException($"settings.{key}: expected a number, a boolean or a string, got {value?.ToJsonString() ?? "null"}"),
            };
            items.Add(Tuple.Create(key, text));
        }
        return ListModule.OfSeq(items);
    }

    static double Number(JsonNode? node, string where) =>
        node is JsonValue v && v.TryGetValue<double>(out var d) ? d
        : throw new InputException($"{where}: expected a number, got {node?.ToJsonString() ?? "null"}");

    static JsonArray Array(JsonNode? node, string where, int? length) =>
        node is JsonArray a
            ? (length is int n && a.Count != n ? throw new InputException($"{where} has {a.Count} entries, expected {n}") : a)
            : throw new InputException($"{where}: expected an array, got {node?.ToJsonString() ?? "nothing (missing field)"}");

    static double[] Read1(JsonObject root, string name, int b) =>
        Array(root[name], name, b).Select((x, i) => Number(x, $"{name}[{i}]")).ToArray();

    static double[][] Read2(JsonObject root, string name, int b, int t) =>
        Array(root[name], name, b).Select((row, i) => Array(row, $"{name}[{i}]", t).Select((x, j) => Number(x, $"{name}[{i}][{j}]")).ToArray()).ToArray();

    static double[][][] Read3(JsonObject root, string name)
    {
        var outer = Array(root[name], name, null);
        if (outer.Count == 0) throw new InputException($"{name} is empty: expected [B][T][V] with B, T, V >= 1");
        var t = Array(outer[0], $"{name}[0]", null).Count;
        var v = Array(Array(outer[0], $"{name}[0]", null).FirstOrDefault(), $"{name}[0][0]", null).Count;
        if (t == 0 || v == 0) throw new InputException($"{name} has T = {t}, V = {v}: expected both >= 1");
        return outer.Select((row, i) => Array(row, $"{name}[{i}]", t)
            .Select((col, j) => Array(col, $"{name}[{i}][{j}]", v).Select((x, k) => Number(x, $"{name}[{i}][{j}][{k}]")).ToArray()).ToArray()).ToArray();
    }

    static Tensor Flat2(double[][] x, int b, int t) => tensor(x.SelectMany(r => r).ToArray(), [b, t], ScalarType.Float64);

    static JsonArray Nest(double[] flat, int b, int t, int v) =>
        new(Enumerable.Range(0, b).Select(i => (JsonNode?)new JsonArray(Enumerable.Range(0, t).Select(j =>
            (JsonNode?)new JsonArray(Enumerable.Range(0, v).Select(k => (JsonNode?)flat[(i * t + j) * v + k]).ToArray())).ToArray())).ToArray());
}
