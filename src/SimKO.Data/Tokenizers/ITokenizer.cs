namespace SimKO.Data.Tokenizers;

/// <summary>
/// Text ↔ token ids for the policy model. Implementations: <see cref="BpeTokenizer"/> (HF
/// byte-level BPE, Qwen2.5/Qwen3/Llama-3) and <see cref="CharTokenizer"/> (built-in tasks).
/// </summary>
public interface ITokenizer
{
    /// <summary>
    /// Token ids of <paramref name="text"/>. Special tokens written in the text (<c>&lt;|im_end|&gt;</c>)
    /// become their single ids; nothing is added (no BOS/EOS) — use <see cref="ApplyChatTemplate"/>
    /// for a model-ready prompt.
    /// </summary>
    int[] Encode(string text);

    /// <summary>Text of <paramref name="ids"/>; with <paramref name="skipSpecialTokens"/> special tokens are left out.</summary>
    string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = false);

    /// <summary>The end-of-sequence id that ends a response (e.g. <c>&lt;|im_end|&gt;</c> for Qwen chat models).</summary>
    int EosId { get; }

    /// <summary>The id used to pad batches (never attended; never a loss target).</summary>
    int PadId { get; }

    /// <summary>The beginning-of-sequence id, if the model family uses one.</summary>
    int? BosId { get; }

    /// <summary>Number of ids: one more than the largest id (the model's vocab_size may be larger).</summary>
    int VocabSize { get; }

    /// <summary>Special (added) tokens and their ids.</summary>
    IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>
    /// The prompt for one user message in the model's chat format, ending where the assistant's
    /// answer begins. A null <paramref name="systemMessage"/> uses the template's default (if any).
    /// Tokenizers without a chat format return the message unchanged.
    /// </summary>
    string ApplyChatTemplate(string userMessage, string? systemMessage = null);

    /// <summary>Writes this tokenizer's files into <paramref name="folder"/> (which must exist) so <see cref="Tokenizers.FromFolder"/> reloads it.</summary>
    void Save(string folder);
}

/// <summary>Loading whichever tokenizer a model folder holds.</summary>
public static class Tokenizers
{
    /// <summary>
    /// The tokenizer of an HF folder: <c>tokenizer.json</c> (+ <c>tokenizer_config.json</c>) gives a
    /// <see cref="BpeTokenizer"/>, <c>char_tokenizer.json</c> a <see cref="CharTokenizer"/>.
    /// </summary>
    public static ITokenizer FromFolder(string folder)
    {
        if (File.Exists(Path.Combine(folder, BpeTokenizer.FileName))) return BpeTokenizer.FromFolder(folder);
        if (File.Exists(Path.Combine(folder, CharTokenizer.FileName))) return CharTokenizer.Load(Path.Combine(folder, CharTokenizer.FileName));
        throw new FileNotFoundException(
            $"{folder}: no tokenizer found (expected {BpeTokenizer.FileName} with {BpeTokenizer.ConfigFileName}, or {CharTokenizer.FileName}).");
    }
}
