using SimKO.Data.Tokenizers;

namespace SimKO.Data.Math;

/// <summary>Prompt templates for math problems (SPEC §5).</summary>
public static class Prompts
{
    /// <summary>The paper's instruction.</summary>
    public const string Instruction = "Please reason step by step, and put your final answer within \\boxed{}.";

    /// <summary>The model's chat template (Qwen markup) around the question and the instruction.</summary>
    public static string Chat(string question) => ChatTemplate.QwenUser($"{question}\n{Instruction}");

    /// <summary>A plain template for base models without a chat template.</summary>
    public static string Plain(string question) => $"Question: {question}\n{Instruction}\nAnswer:";

    public static Func<string, string> ByName(string name) => name switch
    {
        "chat" => Chat,
        "plain" => Plain,
        _ => throw new ArgumentException($"unknown prompt template '{name}'; valid: chat, plain"),
    };
}
