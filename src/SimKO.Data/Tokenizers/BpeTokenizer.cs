using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace SimKO.Data.Tokenizers;

/// <summary>
/// Byte-level BPE tokenizer loaded from a Hugging Face folder (<c>tokenizer.json</c> and
/// <c>tokenizer_config.json</c>), e.g. Qwen2.5/Qwen3. The files are parsed here and the encoding is
/// done by Microsoft.ML.Tokenizers' BPE with byte-level mapping, the split regex of the file's
/// pre-tokenizer and NFC normalisation. Added tokens (<c>&lt;|im_start|&gt;</c> …) written in the
/// text encode as their single ids; decoding keeps them.
/// </summary>
public sealed class HfBpeTokenizer : ITokenizer
{
    public const string TokenizerFile = "tokenizer.json", ConfigFile = "tokenizer_config.json";

    /// <summary>The split pattern that byte-level pre-tokenizers use when they carry no Split step of their own.</summary>
    const string ByteLevelDefaultPattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    readonly Tokenizer _tok;
    readonly string _folder;

    public IReadOnlyDictionary<string, int> AddedTokens { get; }
    public int VocabSize { get; }
    public int EosId { get; }
    public int PadId { get; }
    public string EosToken { get; }
    public string PadToken { get; }

    HfBpeTokenizer(Tokenizer tok, string folder, IReadOnlyDictionary<string, int> added, int vocabSize,
        string eos, int eosId, string pad, int padId)
    {
        _tok = tok; _folder = folder; AddedTokens = added; VocabSize = vocabSize;
        EosToken = eos; EosId = eosId; PadToken = pad; PadId = padId;
    }

    public int[] Encode(string text) => _tok.EncodeToIds(text).ToArray();

    public string Decode(IEnumerable<int> ids)
    {
        var list = ids as IReadOnlyCollection<int> ?? ids.ToList();
        foreach (var i in list)
            if (i < 0 || i >= VocabSize) throw new ArgumentException($"token id {i} is outside the vocabulary (size {VocabSize})");
        return _tok.Decode(list);
    }

    /// <summary>Copies the two JSON files this tokenizer was loaded from into <paramref name="folder"/>.</summary>
    public void Save(string folder)
    {
        Directory.CreateDirectory(folder);
        foreach (var name in new[] { TokenizerFile, ConfigFile })
        {
            var src = Path.GetFullPath(Path.Combine(_folder, name));
            var dst = Path.GetFullPath(Path.Combine(folder, name));
            if (string.Equals(src, dst, StringComparison.Ordinal)) continue;
            var tmp = Path.Combine(folder, $".{name}.tmp-{Environment.ProcessId}");
            File.Copy(src, tmp, overwrite: true);
            File.Move(tmp, dst, overwrite: true);
        }
    }

    public static bool IsPresent(string folder) => File.Exists(Path.Combine(folder, TokenizerFile));

    /// <summary>Loads <c>tokenizer.json</c> and <c>tokenizer_config.json</c> from <paramref name="folder"/>.</summary>
    public static HfBpeTokenizer FromFolder(string folder)
    {
        var path = Path.Combine(folder, TokenizerFile);
        var cfgPath = Path.Combine(folder, ConfigFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: not found", path);
        if (!File.Exists(cfgPath)) throw new FileNotFoundException($"{cfgPath}: not found", cfgPath);

        Dictionary<string, int> vocab;
        List<string> merges;
        Dictionary<string, int> added;
        string pattern;
        bool nfc;
        using (var doc = Parse(path))
        {
            var root = doc.RootElement;
            var model = Field(root, "model", path);
            var type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : "BPE";
            if (type != "BPE") throw new InvalidDataException($"{path}: field 'model.type' is '{type}', only 'BPE' is supported");

            var vocabEl = Field(model, "vocab", path, "model.");
            if (vocabEl.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: field 'model.vocab' must be an object of token → id");
            vocab = new Dictionary<string, int>(vocabEl.GetPropertyCount() is var n && n > 0 ? n : 16, StringComparer.Ordinal);
            foreach (var p in vocabEl.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out var id) || id < 0)
                    throw new InvalidDataException($"{path}: field 'model.vocab' entry '{p.Name}' is not a non-negative integer id");
                vocab[p.Name] = id;
            }

            var mergesEl = Field(model, "merges", path, "model.");
            if (mergesEl.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{path}: field 'model.merges' must be an array");
            merges = new List<string>(mergesEl.GetArrayLength());
            var k = 0;
            foreach (var m in mergesEl.EnumerateArray())
            {
                merges.Add(ReadMerge(m, path, k));
                k++;
            }

            added = new Dictionary<string, int>(StringComparer.Ordinal);
            if (root.TryGetProperty("added_tokens", out var addedEl) && addedEl.ValueKind == JsonValueKind.Array)
            {
                var j = 0;
                foreach (var a in addedEl.EnumerateArray())
                {
                    if (!a.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String)
                        throw new InvalidDataException($"{path}: field 'added_tokens[{j}].content' is missing or not a string");
                    if (!a.TryGetProperty("id", out var idEl) || !idEl.TryGetInt32(out var id) || id < 0)
                        throw new InvalidDataException($"{path}: field 'added_tokens[{j}].id' is missing or not a non-negative integer");
                    added[c.GetString()!] = id;
                    j++;
                }
            }

            pattern = SplitPattern(root, path);
            nfc = ReadNormalizer(root, path);
        }

        var vocabSize = System.Math.Max(vocab.Count == 0 ? 0 : vocab.Values.Max(), added.Count == 0 ? 0 : added.Values.Max()) + 1;

        string eos, pad;
        using (var cfg = Parse(cfgPath))
        {
            eos = TokenText(cfg.RootElement, "eos_token", cfgPath)
                ?? throw new InvalidDataException($"{cfgPath}: field 'eos_token' is missing or null");
            pad = TokenText(cfg.RootElement, "pad_token", cfgPath) ?? eos;
        }
        int IdOf(string token, string field) =>
            added.TryGetValue(token, out var id) || vocab.TryGetValue(token, out id) ? id
            : throw new InvalidDataException($"{cfgPath}: field '{field}' names '{token}', which is neither an added token nor in the vocabulary of {path}");
        var eosId = IdOf(eos, "eos_token");
        var padId = IdOf(pad, "pad_token");

        Regex regex;
        try { regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant); }
        catch (ArgumentException e) { throw new InvalidDataException($"{path}: the pre-tokenizer's split regex is not usable in .NET: {e.Message}"); }

        var special = added.Count == 0 ? null : added;
        var tok = Microsoft.ML.Tokenizers.BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = merges,
            SpecialTokens = special,
            PreTokenizer = new RegexPreTokenizer(regex, special),
            Normalizer = nfc ? new NfcNormalizer() : null,
            ByteLevel = true,
        });
        return new HfBpeTokenizer(tok, folder, added, vocabSize, eos, eosId, pad, padId);
    }

    static JsonDocument Parse(string path)
    {
        try
        {
            using var s = File.OpenRead(path);
            return JsonDocument.Parse(s, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON (line {e.LineNumber + 1}): {e.Message}"); }
    }

    static JsonElement Field(JsonElement o, string name, string path, string prefix = "") =>
        o.ValueKind == JsonValueKind.Object && o.TryGetProperty(name, out var v) ? v
        : throw new InvalidDataException($"{path}: field '{prefix}{name}' is missing");

    /// <summary>A merge, stored either as "a b" or as ["a", "b"], in the "a b" form.</summary>
    static string ReadMerge(JsonElement m, string path, int index)
    {
        if (m.ValueKind == JsonValueKind.String)
        {
            var s = m.GetString()!;
            var sp = s.IndexOf(' ');
            if (sp <= 0 || sp == s.Length - 1 || s.IndexOf(' ', sp + 1) >= 0)
                throw new InvalidDataException($"{path}: field 'model.merges[{index}]' is '{s}', expected two tokens separated by one space");
            return s;
        }
        if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2
            && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
        {
            var a = m[0].GetString()!; var b = m[1].GetString()!;
            if (a.Length == 0 || b.Length == 0 || a.Contains(' ') || b.Contains(' '))
                throw new InvalidDataException($"{path}: field 'model.merges[{index}]' has an empty token or one containing a space, which this loader cannot represent");
            return a + " " + b;
        }
        throw new InvalidDataException($"{path}: field 'model.merges[{index}]' must be a string \"a b\" or a pair [\"a\", \"b\"]");
    }

    /// <summary>The split regex of the pre-tokenizer: its Split step's regex, or the byte-level default.</summary>
    static string SplitPattern(JsonElement root, string path)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{path}: field 'pre_tokenizer' is missing; a byte-level BPE needs one");
        var steps = new List<(JsonElement el, string field)>();
        var ptype = pre.TryGetProperty("type", out var pt) ? pt.GetString() : null;
        if (ptype == "Sequence")
        {
            var i = 0;
            foreach (var s in Field(pre, "pretokenizers", path, "pre_tokenizer.").EnumerateArray())
                steps.Add((s, $"pre_tokenizer.pretokenizers[{i++}]"));
        }
        else steps.Add((pre, "pre_tokenizer"));

        string? pattern = null;
        foreach (var (s, field) in steps)
        {
            var type = s.TryGetProperty("type", out var ty) ? ty.GetString() : null;
            switch (type)
            {
                case "Split":
                    if (pattern != null) throw new NotSupportedException($"{path}: field '{field}': more than one split step is not supported");
                    var pat = Field(s, "pattern", path, field + ".");
                    if (pat.TryGetProperty("Regex", out var rx) && rx.ValueKind == JsonValueKind.String) pattern = rx.GetString()!;
                    else if (pat.TryGetProperty("String", out var str) && str.ValueKind == JsonValueKind.String) pattern = Regex.Escape(str.GetString()!);
                    else throw new InvalidDataException($"{path}: field '{field}.pattern' has neither 'Regex' nor 'String'");
                    var behavior = s.TryGetProperty("behavior", out var b) ? b.GetString() : "Isolated";
                    if (behavior != "Isolated") throw new NotSupportedException($"{path}: field '{field}.behavior' is '{behavior}', only 'Isolated' is supported");
                    if (s.TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True)
                        throw new NotSupportedException($"{path}: field '{field}.invert' is true, which is not supported");
                    break;
                case "ByteLevel":
                    if (s.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.True)
                        throw new NotSupportedException($"{path}: field '{field}.add_prefix_space' is true, which is not supported");
                    if (s.TryGetProperty("use_regex", out var ur) && ur.ValueKind != JsonValueKind.False)
                    {
                        if (pattern != null) throw new NotSupportedException($"{path}: field '{field}.use_regex' is true after a split step, which is not supported");
                        pattern = ByteLevelDefaultPattern;
                    }
                    break;
                default:
                    throw new NotSupportedException($"{path}: field '{field}.type' is '{type}', only Split and ByteLevel pre-tokenizers are supported");
            }
        }
        return pattern ?? throw new InvalidDataException($"{path}: field 'pre_tokenizer' has no split regex");
    }

    /// <summary>True for an NFC normaliser, false for none; anything else is not supported.</summary>
    static bool ReadNormalizer(JsonElement root, string path)
    {
        if (!root.TryGetProperty("normalizer", out var n) || n.ValueKind == JsonValueKind.Null) return false;
        var type = n.TryGetProperty("type", out var t) ? t.GetString() : null;
        if (type == "NFC") return true;
        if (type == "Sequence" && n.TryGetProperty("normalizers", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            var types = list.EnumerateArray().Select(x => x.TryGetProperty("type", out var y) ? y.GetString() : null).ToList();
            if (types.Count == 0) return false;
            if (types.All(x => x == "NFC")) return true;
        }
        throw new NotSupportedException($"{path}: field 'normalizer' of type '{type}' is not supported (only NFC or none)");
    }

    /// <summary>A token named in tokenizer_config.json: a string, an object with 'content', or null.</summary>
    static string? TokenText(JsonElement cfg, string field, string path)
    {
        if (!cfg.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String) return c.GetString();
        throw new InvalidDataException($"{path}: field '{field}' must be a string or an object with 'content'");
    }

    /// <summary>Unicode normalisation form C, as the Hugging Face "NFC" normaliser.</summary>
    sealed class NfcNormalizer : Normalizer
    {
        public override string Normalize(string original) =>
            original.IsNormalized(NormalizationForm.FormC) ? original : original.Normalize(NormalizationForm.FormC);
        public override string Normalize(ReadOnlySpan<char> original) => Normalize(original.ToString());
    }
}
