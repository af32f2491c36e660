using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using SimKO.Data.Math;
using SimKO.Data.Sandbox;

namespace SimKO.Data.Chat;

/// <summary>A chat template that cannot be read or rendered: the message names the template's file and
/// gives Jinja's message (with the template's line when Jinja knows it).</summary>
public sealed class ChatTemplateException : ArgumentException
{
    public ChatTemplateException(string message) : base(message) { }
}

/// <summary>
/// A model's chat template (<c>tokenizer_config.json</c>'s <c>chat_template</c>, or the folder's
/// <c>chat_template.jinja</c>, which transformers prefers), rendered as transformers'
/// <c>apply_chat_template(messages, add_generation_prompt=…, tokenize=False)</c> does: by Jinja2
/// (Debian's python3-jinja2) in an <c>ImmutableSandboxedEnvironment</c> with <c>trim_blocks</c>,
/// <c>lstrip_blocks</c>, <c>loopcontrols</c>, <c>raise_exception</c>, <c>strftime_now</c>, a
/// <c>tojson</c> that keeps non-ASCII text, and the tokenizer's special tokens (<c>bos_token</c>,
/// <c>eos_token</c>, …) as variables. The template runs in the code sandbox (a worker of the pool
/// compiles it once; each batch renders in a fresh child under the pool's limits). Rendered prompts
/// are cached per distinct message list, so a dataset's prompts or a server's repeated conversations
/// render once. Thread-safe.
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>The file the template came from (for messages).</summary>
    public string Source { get; }
    public string Text { get; }
    /// <summary>The special tokens passed to the template by name (<c>bos_token</c>, <c>eos_token</c>, …; absent ones are undefined).</summary>
    public IReadOnlyDictionary<string, string> SpecialTokens { get; }

    readonly ConcurrentDictionary<string, string> _cache = new();
    const int MaxCached = 200_000;

    public ChatTemplate(string text, string source, IReadOnlyDictionary<string, string>? specialTokens = null)
    {
        Text = text; Source = source; SpecialTokens = specialTokens ?? new Dictionary<string, string>();
    }

    /// <summary>Distinct message lists rendered so far (and kept).</summary>
    public int Cached => _cache.Count;

    /// <summary>The file name transformers writes a template to beside <c>tokenizer_config.json</c>.</summary>
    public const string JinjaFile = "chat_template.jinja";
    const string ConfigFile = "tokenizer_config.json", SpecialTokensMapFile = "special_tokens_map.json";
    static readonly string[] SpecialNames = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    /// <summary>The template of an HF folder: <c>chat_template.jinja</c> when there is one, else
    /// <c>tokenizer_config.json</c>'s <c>chat_template</c> (a string, or a list of named templates of which
    /// "default" is used); special tokens from <c>tokenizer_config.json</c>, then <c>special_tokens_map.json</c>.
    /// Throws <see cref="ChatTemplateException"/> naming the file when there is no template or a file is unreadable.</summary>
    public static ChatTemplate FromFolder(string folder)
    {
        var configPath = Path.Combine(folder, ConfigFile);
        var config = ReadObject(configPath);
        var specials = new Dictionary<string, string>();
        foreach (var source in new[] { config, ReadObject(Path.Combine(folder, SpecialTokensMapFile)) })
            if (source is not null)
                foreach (var name in SpecialNames)
                    if (!specials.ContainsKey(name) && TokenText(source[name]) is { } t) specials[name] = t;
        var jinjaPath = Path.Combine(folder, JinjaFile);
        if (File.Exists(jinjaPath)) return new ChatTemplate(File.ReadAllText(jinjaPath), jinjaPath, specials);
        if (config is null) throw new ChatTemplateException($"{configPath} does not exist (nor {jinjaPath}), so the model has no chat template");
        string? text = config["chat_template"] switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonArray list => list.OfType<JsonObject>().FirstOrDefault(o => o["name"] is JsonValue n && n.TryGetValue<string>(out var s) && s == "default")?["template"] is JsonValue d && d.TryGetValue<string>(out var ds) ? ds
                : throw new ChatTemplateException($"{configPath}: field 'chat_template' is a list of named templates without one named 'default'"),
            null => null,
            var other => throw new ChatTemplateException($"{configPath}: field 'chat_template' must be a string or a list of {{\"name\", \"template\"}}, got {other.GetValueKind()}"),
        };
        if (string.IsNullOrEmpty(text)) throw new ChatTemplateException($"{configPath} has no field 'chat_template' (and there is no {JinjaFile}), so the model has no chat template");
        return new ChatTemplate(text, configPath, specials);
    }

    static JsonObject? ReadObject(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new ChatTemplateException($"{path}: expected a JSON object");
        }
        catch (JsonException e) { throw new ChatTemplateException($"{path}: not valid JSON ({e.Message})"); }
    }

    /// <summary>A special token as written in a tokenizer config: a string, or an AddedToken object with "content".</summary>
    static string? TokenText(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonObject o when o["content"] is JsonValue c && c.TryGetValue<string>(out var s) => s,
        _ => null,
    };

    /// <summary>The prompt text of one conversation (see <see cref="RenderMany"/>).</summary>
    public string Render(SandboxPool pool, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        RenderMany(pool, [messages], addGenerationPrompt)[0];

    /// <summary>The prompt texts of many conversations, in order: each distinct one not yet cached is rendered
    /// (split into one batch per worker of <paramref name="pool"/>, in parallel). A template that does not
    /// compile, or raises for a conversation (its <c>raise_exception</c>, an undefined name, a limit), throws
    /// <see cref="ChatTemplateException"/> with the file, Jinja's message and which conversation.</summary>
    public string[] RenderMany(SandboxPool pool, IReadOnlyList<IReadOnlyList<ChatMessage>> conversations, bool addGenerationPrompt = true)
    {
        var keys = conversations.Select(m => Key(m, addGenerationPrompt)).ToArray();
        var todo = keys.Select((k, i) => (k, i)).Where(x => !_cache.ContainsKey(x.k)).DistinctBy(x => x.k).ToList();
        if (todo.Count > 0)
        {
            if (_cache.Count + todo.Count > MaxCached) _cache.Clear();
            var texts = Render(pool, todo.Select(x => conversations[x.i]).ToList(), addGenerationPrompt);
            for (int j = 0; j < todo.Count; j++) _cache[todo[j].k] = texts[j];
        }
        var result = new string[keys.Length];
        for (int i = 0; i < keys.Length; i++)
            // a key cleared by another thread's overflow since: render it again
            result[i] = _cache.TryGetValue(keys[i], out var t) ? t : Render(pool, [conversations[i]], addGenerationPrompt)[0];
        return result;
    }

    static string Key(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) =>
        (addGenerationPrompt ? "g" : "n") + JsonSerializer.Serialize(messages.Select(m => new[] { m.Role, m.Content }));

    string[] Render(SandboxPool pool, IReadOnlyList<IReadOnlyList<ChatMessage>> conversations, bool addGenerationPrompt)
    {
        var texts = new string[conversations.Count];
        int batches = System.Math.Min(pool.Settings.WorkerCount, conversations.Count);
        int per = (conversations.Count + batches - 1) / batches;
        var backstop = TimeSpan.FromSeconds(pool.Settings.WallSeconds * (per + 1) + 10);
        var variables = new JsonObject();
        foreach (var (k, v) in SpecialTokens) variables[k] = v;
        string? failure = null;
        Parallel.For(0, batches, new ParallelOptions { MaxDegreeOfParallelism = batches }, b =>
        {
            int from = b * per, to = System.Math.Min(conversations.Count, from + per);
            if (from >= to) return;
            var items = new JsonArray();
            for (int i = from; i < to; i++)
                items.Add(new JsonObject
                {
                    ["messages"] = new JsonArray(conversations[i].Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray()),
                    ["add_generation_prompt"] = addGenerationPrompt,
                });
            var answer = pool.Request(new JsonObject
            {
                ["kind"] = "chat", ["template"] = Text, ["variables"] = variables.DeepClone(), ["items"] = items,
            }, backstop);
            if (answer is null)
            {
                Interlocked.CompareExchange(ref failure, $"the chat template in {Source}: the sandbox worker died or did not answer while rendering", null);
                return;
            }
            if (answer["fatal"] is JsonValue f)
            {
                Interlocked.CompareExchange(ref failure, $"the chat template in {Source} cannot be used: {f.GetValue<string>()}", null);
                return;
            }
            var list = answer["results"] as JsonArray;
            for (int i = from; i < to; i++)
            {
                var r = list is not null && i - from < list.Count ? list[i - from] as JsonObject : null;
                if (r?["text"] is JsonValue t) texts[i] = t.GetValue<string>();
                else
                {
                    var why = r?["error"] is JsonValue e ? e.GetValue<string>() : "no answer from the sandbox";
                    Interlocked.CompareExchange(ref failure, $"the chat template in {Source} failed for the conversation {Describe(conversations[i])}: {why}", null);
                }
            }
        });
        if (failure is not null) throw new ChatTemplateException(failure);
        return texts;
    }

    static string Describe(IReadOnlyList<ChatMessage> messages)
    {
        var roles = string.Join(", ", messages.Select(m => m.Role));
        var first = messages.Count == 0 ? "" : messages[0].Content.Replace("\n", "\\n");
        return $"[{roles}] (first message '{(first.Length <= 60 ? first : first[..57] + "...")}')";
    }

    public override string ToString() => Source;
}
