using SimKO.Data.Chat;
using SimKO.Data.Math;
using SimKO.Data.Sandbox;
using SimKO.Data.Tokenizers;

namespace SimKO.Host.Serving;

/// <summary>
/// Chat for <c>/v1/chat/completions</c>: the model's chat template (<see cref="ChatTemplate"/>: Jinja2 in
/// the sandbox, as transformers renders it), checked once at startup (an empty user turn must render and
/// encode with the model's tokenizer), and the token ids that end an assistant's turn. When the folder has
/// no template, the template fails, the sandbox is unavailable, or the tokenizer cannot encode what the
/// template writes (a ChatML template beside a character tokenizer), chat is off with the reason, which
/// names the template's file; the server still starts and serves <c>/v1/completions</c>.
/// </summary>
public sealed class ChatMarkup
{
    /// <summary>Why chat cannot be served, or null when it can.</summary>
    public string? Unsupported { get; }
    /// <summary>Ids that end a chat response: the tokenizer's end of text, the template's <c>eos_token</c>, and
    /// the token the template closes an assistant's turn with (<c>&lt;|im_end|&gt;</c>, <c>&lt;|eot_id|&gt;</c>, …).</summary>
    public IReadOnlyList<int> StopTokenIds { get; }
    readonly ChatTemplate? _template;
    readonly Func<SandboxPool>? _pool;

    ChatMarkup(string? unsupported, ChatTemplate? template, Func<SandboxPool>? pool, IReadOnlyList<int> stop)
    {
        Unsupported = unsupported; _template = template; _pool = pool; StopTokenIds = stop;
    }

    static ChatMarkup Off(string why) => new(why, null, null, []);

    /// <summary>The template of an HF folder (see <see cref="ChatTemplate.FromFolder"/>), rendered on
    /// <paramref name="pool"/> (the process's shared sandbox pool when null); chat is off, with the reason, when it cannot be served.</summary>
    public static ChatMarkup FromFolder(string folder, ITokenizer tokenizer, Func<SandboxPool>? pool = null)
    {
        ChatTemplate template;
        try { template = ChatTemplate.FromFolder(folder); }
        catch (ChatTemplateException e) { return Off($"{e.Message}; use /v1/completions"); }
        return FromTemplate(template, tokenizer, pool);
    }

    /// <summary>Chat with <paramref name="template"/> (none: chat off), checked as the class says.</summary>
    public static ChatMarkup FromTemplate(ChatTemplate? template, ITokenizer tokenizer, Func<SandboxPool>? pool = null)
    {
        if (template is null) return Off("the model has no chat template; use /v1/completions");
        pool ??= () => SimKO.Host.Runs.SharedSandbox.Pool;
        const string Marker = "\u0001";
        string probe, closed;
        try
        {
            var p = pool();
            probe = template.Render(p, [new ChatMessage("user", "")]);
            // a template may refuse a conversation that ends with the assistant: then no turn-closing token is found
            try { closed = template.Render(p, [new ChatMessage("user", ""), new ChatMessage("assistant", Marker)], addGenerationPrompt: false); }
            catch (ChatTemplateException) { closed = ""; }
        }
        catch (ChatTemplateException e) { return Off($"{e.Message}; use /v1/completions"); }
        catch (SandboxUnavailableException e) { return Off($"the chat template in {template.Source} is rendered in the code sandbox, which is not available here ({e.Message}); use /v1/completions"); }
        try { tokenizer.Encode(probe); }
        catch (ArgumentException e)
        {
            return Off($"the chat template in {template.Source} writes text this model's tokenizer cannot encode ({e.Message}); use /v1/completions");
        }
        var stop = new List<int> { tokenizer.EosId };
        // what closes an assistant's turn: the text right after its content, up to the first whitespace
        int at = closed.IndexOf(Marker, StringComparison.Ordinal);
        var after = at < 0 ? "" : new string(closed[(at + 1)..].TakeWhile(c => !char.IsWhiteSpace(c)).ToArray());
        foreach (var text in new[] { template.SpecialTokens.GetValueOrDefault("eos_token"), after })
        {
            if (string.IsNullOrEmpty(text)) continue;
            int[] ids;
            try { ids = tokenizer.Encode(text); } catch (ArgumentException) { continue; }
            if (ids.Length == 1 && !stop.Contains(ids[0])) stop.Add(ids[0]);
        }
        return new(null, template, pool, stop);
    }

    /// <summary>The prompt text for <paramref name="messages"/>, ending with the assistant's generation prompt
    /// (cached per distinct message list). A conversation the template rejects throws <see cref="ChatTemplateException"/>.</summary>
    public string Render(IReadOnlyList<(string Role, string Content)> messages)
    {
        if (Unsupported is not null || _template is null || _pool is null) throw new NotSupportedException(Unsupported);
        return _template.Render(_pool(), messages.Select(m => new ChatMessage(m.Role, m.Content)).ToList());
    }
}
