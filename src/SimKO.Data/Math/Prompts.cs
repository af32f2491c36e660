namespace SimKO.Data.Math;

/// <summary>Prompt templates for math problems (SPEC §5).</summary>
public static class Prompts
{
    /// <summary>The paper's instruction.</summary>
    public const string Instruction = "Please reason step by step, and put your final answer within \\boxed{}.";

    /// <summary>The chat prompt of a question as messages: one user message, the question and the
    /// instruction (rendered by the model's own chat template, see <see cref="Chat.ChatTemplate"/>).</summary>
    public static IReadOnlyList<ChatMessage> ChatMessages(string question) => [new ChatMessage("user", $"{question}\n{Instruction}")];

    /// <summary>A plain template for base models without a chat template.</summary>
    public static string Plain(string question) => $"Question: {question}\n{Instruction}\nAnswer:";
}
