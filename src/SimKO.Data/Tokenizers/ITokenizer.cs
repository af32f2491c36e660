namespace SimKO.Data.Tokenizers;

/// <summary>Text ↔ token ids, with the special ids a trainer needs.</summary>
public interface ITokenizer
{
    int[] Encode(string text);
    string Decode(IEnumerable<int> ids);
    int VocabSize { get; }
    int EosId { get; }
    int PadId { get; }
    /// <summary>Write the files that let <c>Load</c> rebuild this tokenizer into an HF-style folder.</summary>
    void Save(string folder);
}
