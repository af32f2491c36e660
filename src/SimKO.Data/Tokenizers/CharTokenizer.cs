using System.Text.Json;
using System.Text.Json.Nodes;

namespace SimKO.Data.Tokenizers;

/// <summary>
/// Character-level tokenizer for built-in tasks: id 0 = padding, 1 = end of sequence, then one id per
/// character of the alphabet in order. Unknown characters are an error naming them.
/// </summary>
public sealed class CharTokenizer : ITokenizer
{
    public const string FileName = "char_tokenizer.json";
    public const int Pad = 0, Eos = 1, Reserved = 2;

    readonly Dictionary<char, int> _ids;
    public string Alphabet { get; }

    public CharTokenizer(string alphabet)
    {
        if (alphabet.Distinct().Count() != alphabet.Length) throw new ArgumentException($"alphabet '{alphabet}' repeats a character");
        Alphabet = alphabet;
        _ids = alphabet.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => x.i + Reserved);
    }

    public int VocabSize => Alphabet.Length + Reserved;
    public int EosId => Eos;
    public int PadId => Pad;

    public int[] Encode(string text) =>
        text.Select(c => _ids.TryGetValue(c, out var id) ? id
            : throw new ArgumentException($"character '{c}' (U+{(int)c:X4}) is not in the tokenizer's alphabet '{Alphabet}'")).ToArray();

    /// <summary>Characters of the ids; padding and EOS are dropped, ids outside the vocabulary are an error.</summary>
    public string Decode(IEnumerable<int> ids) =>
        new(ids.Where(i => i >= Reserved).Select(i => i - Reserved < Alphabet.Length ? Alphabet[i - Reserved]
            : throw new ArgumentException($"token id {i} is outside the vocabulary (size {VocabSize})")).ToArray());

    public void Save(string folder)
    {
        Directory.CreateDirectory(folder);
        var json = new JsonObject { ["type"] = "char", ["alphabet"] = Alphabet, ["pad_id"] = Pad, ["eos_id"] = Eos }.ToJsonString();
        var tmp = Path.Combine(folder, $".{FileName}.tmp");
        File.WriteAllText(tmp, json);
        File.Move(tmp, Path.Combine(folder, FileName), overwrite: true);
    }

    public static CharTokenizer Load(string folder)
    {
        var path = Path.Combine(folder, FileName);
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path))!;
            return new CharTokenizer(o["alphabet"]?.GetValue<string>() ?? throw new InvalidDataException("missing field 'alphabet'"));
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: not a character tokenizer file ({e.Message})");
        }
    }
}
