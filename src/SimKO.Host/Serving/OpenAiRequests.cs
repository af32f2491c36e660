using System.Text.Json.Nodes;

namespace SimKO.Host.Serving;

/// <summary>A request the server refuses: HTTP status, the field at fault (or null) and what was expected.</summary>
public sealed class RequestException(int status, string message, string? param = null, string type = "invalid_request_error") : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string Type { get; } = type;
}

/// <summary>Bounds on what one request may ask for.</summary>
public sealed record RequestLimits(int MaxPromptTokens, int MaxNewTokens, int MaxSequences, int MaxContext)
{
    public int MaxStops { get; init; } = 16;
}

/// <summary>The sampling fields shared by /v1/completions and /v1/chat/completions (vLLM's names).</summary>
public sealed record SamplingFields(int N, int MaxTokens, double Temperature, double TopP, int TopK, long? Seed,
    IReadOnlyList<string> Stop, IReadOnlyList<int> StopTokenIds, bool IgnoreEos);

/// <summary>POST /v1/completions as vLLM accepts it (the subset this server implements).</summary>
public sealed record CompletionRequest(string? Model, IReadOnlyList<(string? Text, int[] Ids)> Prompts, SamplingFields Sampling,
    int? Logprobs, bool Echo, bool TokensAsIds);

/// <summary>POST /v1/chat/completions: plain text messages.</summary>
public sealed record ChatRequest(string? Model, IReadOnlyList<(string Role, string Content)> Messages, SamplingFields Sampling,
    bool Logprobs, int TopLogprobs, bool TokensAsIds);

/// <summary>
/// Parses OpenAI-style JSON bodies field by field: a wrong type or an out-of-range value is a 400 that
/// names the field and says what was expected. Unknown fields are ignored, as vLLM and SGLang do.
/// </summary>
public static class OpenAiRequests
{
    public static JsonObject ParseBody(string body)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(body); }
        catch (System.Text.Json.JsonException e) { throw new RequestException(400, $"the request body is not valid JSON: {e.Message}"); }
        var o = node as JsonObject ?? throw new RequestException(400, "the request body must be a JSON object");
        try { CheckTree(o, ""); }
        catch (DuplicateKeyException)
        {
            using var doc = System.Text.Json.JsonDocument.Parse(body);
            var (path, key) = DuplicateKey(doc.RootElement, "") ?? ("", "?");
            var field = path.Length == 0 ? "the request body" : $"field '{path}'";
            throw new RequestException(400, $"{field} has a duplicate key '{key}'; each key may appear once", path.Length == 0 ? key : path);
        }
        return o;
    }

    /// <summary>Every key of every object once (JsonObject throws on a duplicate only when first read,
    /// deep inside a handler) and every string valid UTF-16 (a lone surrogate cannot be encoded or
    /// written back): a 400 naming the field instead of a 500.</summary>
    static void CheckTree(JsonNode? node, string path)
    {
        static string Field(string path) => path.Length == 0 ? "the request body" : $"field '{path}'";
        switch (node)
        {
            case JsonObject o:
                List<KeyValuePair<string, JsonNode?>> members;
                try { members = o.ToList(); }
                catch (ArgumentException) { throw new DuplicateKeyException(); }
                foreach (var (k, v) in members)
                {
                    var child = path.Length == 0 ? k : $"{path}.{k}";
                    if (!Utf16Valid(k)) throw new RequestException(400, $"{Field(path)} has a key with a lone surrogate (invalid UTF-16)", path.Length == 0 ? null : path);
                    CheckTree(v, child);
                }
                break;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++) CheckTree(a[i], $"{path}[{i}]");
                break;
            case JsonValue v:
                bool valid;
                // System.Text.Json refuses to read a string with a lone surrogate escape (\ud800) at all
                try { valid = !v.TryGetValue<string>(out var s) || Utf16Valid(s); }
                catch (InvalidOperationException) { valid = false; }
                if (!valid) throw new RequestException(400, $"{Field(path)} holds a lone surrogate (invalid UTF-16 text)", path);
                break;
        }
    }

    sealed class DuplicateKeyException : Exception;

    /// <summary>The first duplicate key of a document, as (object path, key), read from the raw text.</summary>
    static (string Path, string Key)? DuplicateKey(System.Text.Json.JsonElement e, string path)
    {
        if (e.ValueKind == System.Text.Json.JsonValueKind.Object)
        {
            var seen = new HashSet<string>();
            foreach (var p in e.EnumerateObject())
            {
                if (!seen.Add(p.Name)) return (path, p.Name);
                if (DuplicateKey(p.Value, path.Length == 0 ? p.Name : $"{path}.{p.Name}") is { } d) return d;
            }
        }
        else if (e.ValueKind == System.Text.Json.JsonValueKind.Array)
        {
            int i = 0;
            foreach (var x in e.EnumerateArray()) if (DuplicateKey(x, $"{path}[{i++}]") is { } d) return d;
        }
        return null;
    }

    static bool Utf16Valid(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            if (char.IsSurrogate(s[i])) return false;
        }
        return true;
    }

    /// <summary>Temperatures below this sample greedily (vLLM's _SAMPLING_EPS): 1/T would overflow the logits.</summary>
    public const double GreedyBelow = 1e-5;

    public static CompletionRequest Completion(JsonObject o, RequestLimits limits, Func<string, int[]> encode, int vocab)
    {
        NoStream(o);
        var prompts = Prompts(o, encode, vocab, limits);
        var sampling = Sampling(o, limits, maxTokensDefault: 16, prompts.Max(p => p.Ids.Length), prompts.Count, "max_tokens");
        int? logprobs = o["logprobs"] is null ? null : Int(o, "logprobs", 0, 0, 20);
        return new CompletionRequest(Str(o, "model"), prompts, sampling, logprobs, Bool(o, "echo", false), Bool(o, "return_tokens_as_token_ids", false));
    }

    public static ChatRequest Chat(JsonObject o, RequestLimits limits)
    {
        NoStream(o);
        if (o["messages"] is not JsonArray arr) throw new RequestException(400, "field 'messages' is missing or not an array of {role, content}", "messages");
        if (arr.Count == 0) throw new RequestException(400, "field 'messages' is empty", "messages");
        var messages = new List<(string, string)>();
        for (int i = 0; i < arr.Count; i++)
        {
            if (arr[i] is not JsonObject m) throw new RequestException(400, $"field 'messages[{i}]' must be an object {{role, content}}", $"messages[{i}]");
            var role = Str(m, "role", $"messages[{i}].role") ?? throw new RequestException(400, $"field 'messages[{i}].role' is missing", $"messages[{i}].role");
            if (role is not ("system" or "user" or "assistant"))
                throw new RequestException(400, $"field 'messages[{i}].role' is '{role}'; expected system, user or assistant", $"messages[{i}].role");
            string content = m["content"] switch
            {
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                JsonArray parts => string.Concat(parts.Select((p, k) => p is JsonObject po && po["type"] is JsonValue pt && pt.TryGetValue<string>(out var ptype) && ptype == "text" && po["text"] is JsonValue t && t.TryGetValue<string>(out var ts) ? ts
                    : throw new RequestException(400, $"field 'messages[{i}].content[{k}]' must be a text part {{\"type\": \"text\", \"text\": …}}", $"messages[{i}].content[{k}]"))),
                _ => throw new RequestException(400, $"field 'messages[{i}].content' is missing or not a string", $"messages[{i}].content"),
            };
            messages.Add((role, content));
        }
        var maxField = o["max_completion_tokens"] is not null ? "max_completion_tokens" : "max_tokens";
        var sampling = Sampling(o, limits, maxTokensDefault: limits.MaxNewTokens, promptTokens: 0, prompts: 1, maxField);
        var logprobs = Bool(o, "logprobs", false);
        var top = Int(o, "top_logprobs", 0, 0, 20);
        return new ChatRequest(Str(o, "model"), messages, sampling, logprobs, top, Bool(o, "return_tokens_as_token_ids", false));
    }

    static void NoStream(JsonObject o)
    {
        if (Bool(o, "stream", false)) throw new RequestException(400, "field 'stream': streaming is not supported by this server; send stream=false", "stream");
    }

    static List<(string? Text, int[] Ids)> Prompts(JsonObject o, Func<string, int[]> encode, int vocab, RequestLimits limits)
    {
        var p = o["prompt"] ?? throw new RequestException(400, "field 'prompt' is missing (text, a token-id list, or a list of either)", "prompt");
        var result = new List<(string? Text, int[] Ids)>();
        (string?, int[]) One(JsonNode? n, string field)
        {
            if (n is JsonValue v && v.TryGetValue<string>(out var text))
            {
                int[] ids;
                try { ids = encode(text); }
                catch (ArgumentException e) { throw new RequestException(400, $"field '{field}' cannot be encoded: {e.Message}", field); }
                return (text, Check(ids, field));
            }
            if (n is JsonArray a && a.All(x => x is JsonValue xv && xv.TryGetValue<long>(out _)))
            {
                var ids = a.Select(x => x!.GetValue<long>()).ToArray();
                for (int i = 0; i < ids.Length; i++)
                    if (ids[i] < 0 || ids[i] >= vocab)
                        throw new RequestException(400, $"field '{field}[{i}]' is token id {ids[i]}, outside the vocabulary [0, {vocab})", field);
                return (null, Check(ids.Select(x => (int)x).ToArray(), field));
            }
            throw new RequestException(400, $"field '{field}' must be a string or a list of token ids", field);
        }
        int[] Check(int[] ids, string field)
        {
            if (ids.Length == 0) throw new RequestException(400, $"field '{field}' is empty; a prompt needs at least one token", field);
            if (ids.Length > limits.MaxPromptTokens)
                throw new RequestException(400, $"field '{field}' has {ids.Length} tokens; this server takes at most {limits.MaxPromptTokens} prompt tokens", field);
            return ids;
        }
        if (p is JsonArray arr && arr.Count > 0 && arr.All(x => x is JsonArray || (x is JsonValue xv && xv.TryGetValue<string>(out _))))
            for (int i = 0; i < arr.Count; i++) result.Add(One(arr[i], $"prompt[{i}]"));
        else result.Add(One(p, "prompt"));
        return result;
    }

    static SamplingFields Sampling(JsonObject o, RequestLimits limits, int maxTokensDefault, int promptTokens, int prompts, string maxField)
    {
        int n = Int(o, "n", 1, 1, limits.MaxSequences);
        if ((long)n * prompts > limits.MaxSequences)
            throw new RequestException(400, $"field 'n': {prompts} prompts × n = {n} asks for {(long)n * prompts} sequences; this server takes at most {limits.MaxSequences} per request", "n");
        int maxTokens = Int(o, maxField, System.Math.Min(maxTokensDefault, limits.MaxNewTokens), 0, limits.MaxNewTokens);
        if (promptTokens + maxTokens > limits.MaxContext)
            throw new RequestException(400, $"field '{maxField}': {promptTokens} prompt tokens + {maxTokens} new tokens exceed the model's context of {limits.MaxContext}", maxField);
        double temperature = Num(o, "temperature", 1.0, 0, 100);
        if (temperature < GreedyBelow) temperature = 0;
        double topP = Num(o, "top_p", 1.0, 0, 1);
        if (topP == 0) throw new RequestException(400, "field 'top_p' is 0; expected a value in (0, 1]", "top_p");
        int topK = Int(o, "top_k", 0, -1, int.MaxValue);
        long? seed = o["seed"] is null ? null : Long(o, "seed");
        var stop = o["stop"] switch
        {
            null => [],
            JsonValue v when v.TryGetValue<string>(out var s) => [s],
            JsonArray a when a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)) => a.Select(x => x!.GetValue<string>()).ToList(),
            _ => throw new RequestException(400, "field 'stop' must be a string or a list of strings", "stop"),
        };
        if (stop.Count > limits.MaxStops) throw new RequestException(400, $"field 'stop' has {stop.Count} strings; at most {limits.MaxStops}", "stop");
        if (stop.Any(s => s.Length == 0)) throw new RequestException(400, "field 'stop' holds an empty string", "stop");
        var stopIds = o["stop_token_ids"] switch
        {
            null => [],
            JsonArray a when a.All(x => x is JsonValue xv && xv.TryGetValue<int>(out _)) => a.Select(x => x!.GetValue<int>()).ToList(),
            _ => throw new RequestException(400, "field 'stop_token_ids' must be a list of integers", "stop_token_ids"),
        };
        return new SamplingFields(n, maxTokens, temperature, topP, topK < 0 ? 0 : topK, seed, stop, stopIds, Bool(o, "ignore_eos", false));
    }

    static string? Str(JsonObject o, string name, string? field = null) => o[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => throw new RequestException(400, $"field '{field ?? name}' must be a string", field ?? name),
    };

    static bool Bool(JsonObject o, string name, bool dflt) => o[name] switch
    {
        null => dflt,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        _ => throw new RequestException(400, $"field '{name}' must be true or false", name),
    };

    static long Long(JsonObject o, string name) =>
        o[name] is JsonValue v && v.TryGetValue<long>(out var x) ? x
        : o[name] is JsonValue d && d.TryGetValue<double>(out var dx) && dx == System.Math.Floor(dx) && System.Math.Abs(dx) < 9e18 ? (long)dx
        : throw new RequestException(400, $"field '{name}' must be an integer", name);

    static int Int(JsonObject o, string name, int dflt, int min, int max)
    {
        if (o[name] is null) return dflt;
        long x = Long(o, name);
        if (x < min || x > max) throw new RequestException(400, $"field '{name}' is {x}; expected an integer in [{min}, {max}]", name);
        return (int)x;
    }

    static double Num(JsonObject o, string name, double dflt, double min, double max)
    {
        if (o[name] is null) return dflt;
        if (o[name] is not JsonValue v || !v.TryGetValue<double>(out var x) || double.IsNaN(x))
            throw new RequestException(400, $"field '{name}' must be a number", name);
        if (x < min || x > max) throw new RequestException(400, $"field '{name}' is {x}; expected a number in [{min}, {max}]", name);
        return x;
    }
}
