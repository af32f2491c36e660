using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using SimKO.Data.Tasks;

namespace SimKO.Data.Prompts;

/// <summary>Turns a problem into the text the model continues.</summary>
public interface IPromptTemplate
{
    /// <summary>The prompt for <paramref name="problem"/>.</summary>
    string Render(Problem problem);
}

/// <summary>
/// One user turn in the ChatML format of Qwen's chat templates, ending with the assistant header so the model
/// answers next (<c>add_generation_prompt</c>):
/// <code>
/// &lt;|im_start|&gt;user
/// {question}
/// Please reason step by step, and put your final answer within \boxed{}.&lt;|im_end|&gt;
/// &lt;|im_start|&gt;assistant
/// </code>
/// Qwen3's template (the shared fixture) adds no system turn unless one is given; Qwen2.5's adds a default one
/// (<see cref="FromTokenizerConfig"/> reads it from the template).
/// </summary>
public sealed partial record ChatTemplate : IPromptTemplate
{
    /// <summary>The paper's instruction (§5.1).</summary>
    public const string PaperInstruction = "Please reason step by step, and put your final answer within \\boxed{}.";

    /// <summary>System message, or null for no system turn (Qwen3's default). Default null.</summary>
    public string? System { get; init; }
    /// <summary>Appended to the question after a newline; empty for none. Default <see cref="PaperInstruction"/>.</summary>
    public string Instruction { get; init; } = PaperInstruction;
    /// <summary>Qwen3's switch: false appends the empty think block <c>&lt;think&gt;\n\n&lt;/think&gt;\n\n</c> after the
    /// assistant header (non-thinking mode), as the template does for <c>enable_thinking=false</c>; null or true
    /// append nothing. Default null.</summary>
    public bool? EnableThinking { get; init; }

    /// <summary>The paper's prompt in Qwen3's format (no system turn).</summary>
    public static readonly ChatTemplate Paper = new();

    /// <inheritdoc/>
    public string Render(Problem problem) => Render(problem.Question);

    /// <summary>The prompt for a question text.</summary>
    public string Render(string question)
    {
        var sb = new StringBuilder(question.Length + 160);
        if (System is not null) sb.Append("<|im_start|>system\n").Append(System).Append("<|im_end|>\n");
        sb.Append("<|im_start|>user\n").Append(question);
        if (Instruction.Length > 0) sb.Append('\n').Append(Instruction);
        sb.Append("<|im_end|>\n<|im_start|>assistant\n");
        if (EnableThinking == false) sb.Append("<think>\n\n</think>\n\n");
        return sb.ToString();
    }

    /// <summary>
    /// The template of a tokenizer's <c>tokenizer_config.json</c>: checks that its <c>chat_template</c> is ChatML and
    /// takes the default system message the template inserts when the conversation has none (Qwen2.5:
    /// "You are Qwen, …"; Qwen3: none).
    /// </summary>
    /// <exception cref="DataFormatException">No chat template, or not a ChatML one.</exception>
    public static ChatTemplate FromTokenizerConfig(string path, string instruction = PaperInstruction)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        if (!doc.RootElement.TryGetProperty("chat_template", out var t) || t.ValueKind != JsonValueKind.String)
            throw new DataFormatException(path, null, "chat_template", "field 'chat_template' is missing or not a string");
        var template = t.GetString()!;
        if (!template.Contains("<|im_start|>", StringComparison.Ordinal))
            throw new DataFormatException(path, null, "chat_template",
                $"field 'chat_template': only ChatML chat templates (<|im_start|>…<|im_end|>, Qwen) are supported; this one begins '{template[..Math.Min(60, template.Length)]}'");
        var m = DefaultSystem().Match(template);
        return new ChatTemplate { System = m.Success ? Regex.Unescape(m.Groups[1].Value) : null, Instruction = instruction };
    }

    // A literal system turn in the template, e.g. {{- '<|im_start|>system\nYou are Qwen, …<|im_end|>\n' }}.
    [GeneratedRegex(@"'<\|im_start\|>system\\n([^'+]*?)<\|im_end\|>\\n'")]
    private static partial Regex DefaultSystem();
}

/// <summary>
/// For base models without a chat template: <c>Question: {question}\n{instruction}\nAnswer:</c> followed by a space.
/// </summary>
public sealed record PlainTemplate : IPromptTemplate
{
    /// <summary>Appended to the question on its own line; empty for none. Default <see cref="ChatTemplate.PaperInstruction"/>.</summary>
    public string Instruction { get; init; } = ChatTemplate.PaperInstruction;

    /// <summary>The paper's instruction in plain form.</summary>
    public static readonly PlainTemplate Paper = new();

    /// <inheritdoc/>
    public string Render(Problem problem) =>
        Instruction.Length > 0 ? $"Question: {problem.Question}\n{Instruction}\nAnswer: " : $"Question: {problem.Question}\nAnswer: ";
}

/// <summary>A built-in task's own compact prompt (e.g. Countdown's <c>575:017=</c>).</summary>
public sealed record TaskTemplate(IBuiltinTask Task) : IPromptTemplate
{
    /// <inheritdoc/>
    public string Render(Problem problem) => Task.Prompt(problem);
}

/// <summary>Templates by name, for the command line.</summary>
public static class PromptTemplates
{
    /// <summary>Names <see cref="Create"/> accepts: <c>chat</c> (Qwen ChatML with the paper's instruction), <c>plain</c>.
    /// Built-in tasks use <see cref="TaskTemplate"/>.</summary>
    public static readonly IReadOnlyList<string> Names = ["chat", "plain"];

    /// <summary>The template named <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">Unknown name (the message lists the valid ones).</exception>
    public static IPromptTemplate Create(string name) => name switch
    {
        "chat" => ChatTemplate.Paper,
        "plain" => PlainTemplate.Paper,
        _ => throw new ArgumentException($"unknown prompt template '{name}'; valid: {string.Join(", ", Names)}", nameof(name)),
    };
}
