using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SimKO.Data.Tokenizers;

/// <summary>
/// One id per character, for the built-in tasks. Ids 0, 1 and 2 are reserved for
/// <c>&lt;pad&gt;</c>, <c>&lt;eos&gt;</c> and <c>&lt;bos&gt;</c>; the alphabet's characters
/// (Unicode scalar values, in the order given) follow from id 3. The literal strings
/// <c>&lt;pad&gt;</c>, <c>&lt;eos&gt;</c>, <c>&lt;bos&gt;</c> in a text encode to their ids.
/// </summary>
public sealed class CharTokenizer : ITokenizer
{
    /// <summary>The file <see cref="Save"/> writes and <see cref="Tokenizers.FromFolder"/> recognises.</summary>
    public const string FileName = "char_tokenizer.json";
    public const int Pad = 0, Eos = 1, Bos = 2, FirstCharId = 3;
    static readonly string[] specialNames = ["<pad>", "<eos>", "<bos>"];

    private readonly Rune[] chars;
    private readonly Dictionary<Rune, int> ids = new();
    private readonly Dictionary<string, int> specials;

    /// <summary>The characters, in id order (id = <see cref="FirstCharId"/> + index).</summary>
    public string Alphabet { get; }

    /// <param name="alphabet">distinct characters; duplicates are an error</param>
    public CharTokenizer(string alphabet)
    {
        ArgumentNullException.ThrowIfNull(alphabet);
        Alphabet = alphabet;
        chars = alphabet.EnumerateRunes().ToArray();
        for (int i = 0; i < chars.Length; i++)
            if (!ids.TryAdd(chars[i], FirstCharId + i))
                throw new ArgumentException($"alphabet has '{chars[i]}' (U+{chars[i].Value:X4}) twice (positions {ids[chars[i]] - FirstCharId} and {i}).", nameof(alphabet));
        specials = specialNames.Select((s, i) => (s, i)).ToDictionary(p => p.s, p => p.i, StringComparer.Ordinal);
    }

    public int EosId => Eos;
    public int PadId => Pad;
    public int? BosId => Bos;
    public int VocabSize => FirstCharId + chars.Length;
    public IReadOnlyDictionary<string, int> SpecialTokens => specials;

    public int[] Encode(string text)
    {
        var result = new List<int>(text.Length);
        int i = 0;
        while (i < text.Length)
        {
            if (text[i] == '<')
            {
                int sp = Array.FindIndex(specialNames, s => string.CompareOrdinal(text, i, s, 0, s.Length) == 0);
                if (sp >= 0) { result.Add(sp); i += specialNames[sp].Length; continue; }
            }
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out var r, out int used) != System.Buffers.OperationStatus.Done)
                throw new ArgumentException($"text has an invalid UTF-16 sequence at index {i}.", nameof(text));
            if (!ids.TryGetValue(r, out var id))
                throw new ArgumentException($"character '{r}' (U+{r.Value:X4}) at index {i} is not in the alphabet \"{Alphabet}\".", nameof(text));
            result.Add(id);
            i += used;
        }
        return result.ToArray();
    }

    public string Decode(IReadOnlyList<int> tokenIds, bool skipSpecialTokens = false)
    {
        var sb = new StringBuilder(tokenIds.Count);
        foreach (var id in tokenIds)
        {
            if (id >= 0 && id < FirstCharId) { if (!skipSpecialTokens) sb.Append(specialNames[id]); }
            else if (id >= FirstCharId && id < VocabSize) sb.Append(chars[id - FirstCharId].ToString());
            else throw new ArgumentOutOfRangeException(nameof(tokenIds), $"token id {id} is outside the character vocabulary [0, {VocabSize}).");
        }
        return sb.ToString();
    }

    /// <summary>No chat format: the message itself (the system message, if any, first, on its own line).</summary>
    public string ApplyChatTemplate(string userMessage, string? systemMessage = null) =>
        systemMessage is null ? userMessage : systemMessage + "\n" + userMessage;

    public void Save(string folder)
    {
        var o = new JsonObject
        {
            ["type"] = "simko-char",
            ["alphabet"] = Alphabet,
            ["special_tokens"] = new JsonObject { ["<pad>"] = Pad, ["<eos>"] = Eos, ["<bos>"] = Bos },
        };
        File.WriteAllText(Path.Combine(folder, FileName), o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Reads a file written by <see cref="Save"/>.</summary>
    public static CharTokenizer Load(string path)
    {
        JsonNode? n;
        try { n = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
        if (n is not JsonObject o || (string?)o["type"] != "simko-char" || o["alphabet"] is not JsonValue a || !a.TryGetValue<string>(out var alphabet))
            throw new InvalidDataException($"{path}: expected {{\"type\": \"simko-char\", \"alphabet\": \"…\"}}.");
        return new CharTokenizer(alphabet);
    }
}
