using System.Text.RegularExpressions;

namespace SimKO.Data.Tokenizers;

/// <summary>The chat layouts a prompt can be rendered in.</summary>
public enum ChatFormat
{
    /// <summary>No template: the user message is the prompt.</summary>
    None,
    /// <summary>Qwen's ChatML: <c>&lt;|im_start|&gt;role\n…&lt;|im_end|&gt;\n</c>.</summary>
    ChatML,
    /// <summary>Llama-3 instruct: <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\n…&lt;|eot_id|&gt;</c>.</summary>
    Llama3,
}

/// <summary>
/// The one-user-message case of the HF chat templates, written out (no Jinja): a system turn if
/// any, the user turn, and the opening of the assistant turn (<c>add_generation_prompt</c>).
/// </summary>
public static class ChatTemplates
{
    /// <summary>Renders a prompt. <paramref name="bos"/> is prepended for Llama-3.</summary>
    public static string Render(ChatFormat format, string user, string? system, string? bos = null) => format switch
    {
        ChatFormat.None => user,
        ChatFormat.ChatML =>
            (system is null ? "" : $"<|im_start|>system\n{system}<|im_end|>\n")
            + $"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n",
        ChatFormat.Llama3 =>
            (bos ?? "")
            + (system is null ? "" : $"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>")
            + $"<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    /// <summary>
    /// The system message a ChatML template inserts when the conversation has none (Qwen2.5:
    /// "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."; Qwen2.5-Math:
    /// "Please reason step by step, and put your final answer within \boxed{}."), or null (Qwen3).
    /// The template's string escapes (<c>\n</c>, <c>\\</c>) are undone.
    /// </summary>
    public static string? DefaultChatMLSystem(string template)
    {
        var m = Regex.Match(template, @"'<\|im_start\|>system\\n([^'<]*)<\|im_end\|>\\n'");
        if (!m.Success) return null;
        return Regex.Replace(m.Groups[1].Value, @"\\(.)", e => e.Groups[1].Value switch
        {
            "n" => "\n",
            "t" => "\t",
            var c => c,
        });
    }
}
