using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SimKO.Data.Tokenizers;

namespace SimKO.Host.Serving;

/// <summary>
/// The chat template of a model folder (<c>tokenizer_config.json</c>'s <c>chat_template</c>), rendered
/// without a Jinja engine: the ChatML family (Qwen2, Qwen2.5, Qwen3 — any template built from
/// <c>&lt;|im_start|&gt;role\n…&lt;|im_end|&gt;\n</c> blocks) is rendered exactly for plain text
/// messages with the generation prompt, including the default system message a Qwen2.5 template
/// inserts. Any other template is reported as one this server cannot render.
/// </summary>
public sealed class ChatMarkup
{
    /// <summary>Why chat cannot be served, or null when it can.</summary>
    public string? Unsupported { get; }
    readonly string? _defaultSystem;
    public IReadOnlyList<int> StopTokenIds { get; }

    ChatMarkup(string? unsupported, string? defaultSystem, IReadOnlyList<int> stop)
    {
        Unsupported = unsupported; _defaultSystem = defaultSystem; StopTokenIds = stop;
    }

    // a Jinja string literal holding a whole default system block: '<|im_start|>system\n…<|im_end|>\n'
    static readonly Regex DefaultSystem = new(@"'<\|im_start\|>system\\n([^'{}]+?)<\|im_end\|>\\n'", RegexOptions.CultureInvariant);

    /// <summary>Reads the template of <paramref name="folder"/> (no file or no template: chat unsupported, with the reason).</summary>
    public static ChatMarkup FromFolder(string folder, ITokenizer tokenizer)
    {
        var path = Path.Combine(folder, HfBpeTokenizer.ConfigFile);
        if (!File.Exists(path)) return new($"{path} does not exist, so the model has no chat template; use /v1/completions", null, []);
        string? template;
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(path));
            template = node?["chat_template"] switch
            {
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                JsonArray list => list.OfType<JsonObject>().FirstOrDefault(o => o["name"]?.GetValue<string>() == "default")?["template"]?.GetValue<string>(),
                _ => null,
            };
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
        {
            return new($"{path}: not valid JSON ({e.Message})", null, []);
        }
        return FromTemplate(template, path, tokenizer);
    }

    public static ChatMarkup FromTemplate(string? template, string source, ITokenizer tokenizer)
    {
        if (string.IsNullOrEmpty(template)) return new($"{source} has no field 'chat_template'; use /v1/completions", null, []);
        if (!template.Contains("<|im_start|>") || !template.Contains("<|im_end|>"))
            return new($"the chat template in {source} is not a ChatML (Qwen-style) template, the only family this server renders; use /v1/completions with the prompt rendered by the client", null, []);
        var imEnd = tokenizer.Encode("<|im_end|>");
        var stop = new List<int> { tokenizer.EosId };
        if (imEnd.Length == 1) stop.Add(imEnd[0]);
        var m = DefaultSystem.Match(template);
        return new(null, m.Success ? m.Groups[1].Value : null, stop.Distinct().ToList());
    }

    /// <summary>The prompt text for <paramref name="messages"/> (role, content), ending with the assistant's generation prompt.</summary>
    public string Render(IReadOnlyList<(string Role, string Content)> messages)
    {
        if (Unsupported is not null) throw new NotSupportedException(Unsupported);
        var sb = new StringBuilder();
        if (_defaultSystem is not null && (messages.Count == 0 || messages[0].Role != "system"))
            sb.Append("<|im_start|>system\n").Append(_defaultSystem).Append("<|im_end|>\n");
        foreach (var (role, content) in messages)
            sb.Append("<|im_start|>").Append(role).Append('\n').Append(content).Append("<|im_end|>\n");
        return sb.Append("<|im_start|>assistant\n").ToString();
    }
}
