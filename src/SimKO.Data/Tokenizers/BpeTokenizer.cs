using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using MlBpe = Microsoft.ML.Tokenizers.BpeTokenizer;

namespace SimKO.Data.Tokenizers;

/// <summary>Unicode NFC normalisation (tokenizer.json <c>"normalizer": {"type": "NFC"}</c>).</summary>
public sealed class NfcNormalizer : Normalizer
{
    public override string Normalize(string original) => original.Normalize(NormalizationForm.FormC);
    public override string Normalize(ReadOnlySpan<char> original) => original.ToString().Normalize(NormalizationForm.FormC);
}

/// <summary>
/// An HF byte-level BPE tokenizer (Qwen2.5, Qwen3, Llama-3) read from <c>tokenizer.json</c> and
/// <c>tokenizer_config.json</c>. Encoding runs Microsoft.ML.Tokenizers' BPE with the file's split
/// regex, NFC when the file asks for it, and every added token kept whole; with
/// <c>ignore_merges</c> (Llama-3) a pre-token that is itself a vocab entry is emitted directly.
/// Decoding maps ids back through the byte-level table and decodes UTF-8 (invalid bytes become U+FFFD).
/// </summary>
public sealed class BpeTokenizer : ITokenizer
{
    /// <summary>The HF tokenizer file.</summary>
    public const string FileName = "tokenizer.json";
    /// <summary>The HF tokenizer settings file (special tokens, chat template).</summary>
    public const string ConfigFileName = "tokenizer_config.json";
    /// <summary>Other tokenizer files copied along when present.</summary>
    static readonly string[] ExtraFiles = ["special_tokens_map.json", "vocab.json", "merges.txt"];

    private readonly MlBpe bpe;
    private readonly string?[] idToToken;                 // vocab entries (byte-level spelling) and added tokens
    private readonly bool[] isSpecial;                    // added tokens marked special
    private readonly Dictionary<string, int> vocab;
    private readonly Dictionary<string, int> added;
    private readonly Regex? splitRegex;                   // used only with ignore_merges
    private readonly Regex? addedRegex;                   // used only with ignore_merges
    private readonly bool ignoreMerges, nfc;
    private readonly Dictionary<string, byte[]> files;    // file name -> bytes, written back by Save
    private readonly string? defaultSystem;

    public int EosId { get; }
    public int PadId { get; }
    public int? BosId { get; }
    public int VocabSize { get; }
    public IReadOnlyDictionary<string, int> SpecialTokens => added;
    /// <summary>The chat format the tokenizer_config's template uses.</summary>
    public ChatFormat ChatFormat { get; }
    /// <summary>The folder this tokenizer was read from.</summary>
    public string Source { get; }

    private BpeTokenizer(string source, MlBpe bpe, Dictionary<string, int> vocab, Dictionary<string, int> added, HashSet<int> special,
        Regex? splitRegex, bool ignoreMerges, bool nfc, int eos, int pad, int? bos, ChatFormat chat, string? defaultSystem,
        Dictionary<string, byte[]> files)
    {
        Source = source;
        this.bpe = bpe;
        this.vocab = vocab;
        this.added = added;
        this.ignoreMerges = ignoreMerges;
        this.nfc = nfc;
        this.files = files;
        this.defaultSystem = defaultSystem;
        this.splitRegex = splitRegex;
        if (ignoreMerges && added.Count > 0)
            addedRegex = new Regex(string.Join("|", added.Keys.OrderByDescending(k => k.Length).Select(Regex.Escape)), RegexOptions.Compiled);
        int max = System.Math.Max(vocab.Count == 0 ? -1 : vocab.Values.Max(), added.Count == 0 ? -1 : added.Values.Max());
        VocabSize = max + 1;
        idToToken = new string?[VocabSize];
        isSpecial = new bool[VocabSize];
        foreach (var (t, i) in vocab) idToToken[i] = t;
        foreach (var (t, i) in added) { idToToken[i] = t; isSpecial[i] = special.Contains(i); }
        EosId = eos; PadId = pad; BosId = bos; ChatFormat = chat;
    }

    /// <summary>Reads <c>tokenizer.json</c> and <c>tokenizer_config.json</c> from <paramref name="folder"/>.</summary>
    public static BpeTokenizer FromFolder(string folder)
    {
        string tokPath = Path.Combine(folder, FileName), cfgPath = Path.Combine(folder, ConfigFileName);
        if (!File.Exists(tokPath)) throw new FileNotFoundException($"{tokPath}: not found.", tokPath);
        var files = new Dictionary<string, byte[]> { [FileName] = File.ReadAllBytes(tokPath) };
        if (File.Exists(cfgPath)) files[ConfigFileName] = File.ReadAllBytes(cfgPath);
        foreach (var extra in ExtraFiles)
        {
            var p = Path.Combine(folder, extra);
            if (File.Exists(p)) files[extra] = File.ReadAllBytes(p);
        }

        using var tok = ParseJson(files[FileName], tokPath);
        var root = tok.RootElement;
        var model = Prop(root, "model", tokPath);
        string type = model.TryGetProperty("type", out var ty) ? ty.GetString() ?? "" : "";
        if (type != "BPE") throw new InvalidDataException($"{tokPath}: model.type is '{type}'; only byte-level BPE is supported.");

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var e in Prop(model, "vocab", tokPath).EnumerateObject()) vocab[e.Name] = e.Value.GetInt32();
        var merges = new List<string>();
        foreach (var m in Prop(model, "merges", tokPath).EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.String) merges.Add(m.GetString()!);
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
                merges.Add(m[0].GetString() + " " + m[1].GetString());
            else throw new InvalidDataException($"{tokPath}: merges entries must be \"a b\" strings or [a, b] pairs; found {m.GetRawText()}.");
        }
        bool ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;

        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        var special = new HashSet<int>();
        if (root.TryGetProperty("added_tokens", out var at) && at.ValueKind == JsonValueKind.Array)
            foreach (var a in at.EnumerateArray())
            {
                int id = Prop(a, "id", tokPath).GetInt32();
                added[Prop(a, "content", tokPath).GetString()!] = id;
                if (a.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True) special.Add(id);
            }

        bool nfc = false;
        if (root.TryGetProperty("normalizer", out var norm) && norm.ValueKind == JsonValueKind.Object)
        {
            string nt = norm.TryGetProperty("type", out var ntt) ? ntt.GetString() ?? "" : "";
            if (nt == "NFC") nfc = true;
            else throw new InvalidDataException($"{tokPath}: normalizer '{nt}' is not supported (supported: NFC or none).");
        }

        string pattern = FindSplitPattern(root, tokPath);
        var mlOptions = new BpeOptions(vocab)
        {
            Merges = merges,
            SpecialTokens = added,
            PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), added),
            Normalizer = nfc ? new NfcNormalizer() : null,
            ByteLevel = true,
        };
        // With ignore_merges, splitting (added tokens, then the regex) is done here and each piece is
        // handed to a BPE whose pre-tokenizer keeps the piece whole (a null pre-tokenizer would
        // split on whitespace and drop it).
        if (ignoreMerges)
            mlOptions = new BpeOptions(vocab)
            {
                Merges = merges,
                ByteLevel = true,
                PreTokenizer = new RegexPreTokenizer(new Regex(@"[\s\S]+", RegexOptions.Compiled), null),
            };
        var bpe = MlBpe.Create(mlOptions);

        // tokenizer_config.json: eos / pad / bos and the chat template.
        string? eosText = null, padText = null, bosText = null, template = null;
        if (files.TryGetValue(ConfigFileName, out var cfgBytes))
        {
            using var cfg = ParseJson(cfgBytes, cfgPath);
            eosText = TokenText(cfg.RootElement, "eos_token");
            padText = TokenText(cfg.RootElement, "pad_token");
            bosText = TokenText(cfg.RootElement, "bos_token");
            if (cfg.RootElement.TryGetProperty("chat_template", out var ct) && ct.ValueKind == JsonValueKind.String) template = ct.GetString();
        }
        int Lookup(string text, string field)
        {
            if (added.TryGetValue(text, out var i) || vocab.TryGetValue(text, out i)) return i;
            throw new InvalidDataException($"{cfgPath}: {field} '{text}' is neither an added token nor a vocab entry of {tokPath}.");
        }
        if (eosText is null) throw new InvalidDataException($"{cfgPath}: no eos_token; the rollout needs one to stop.");
        int eos = Lookup(eosText, "eos_token");
        int pad = padText is null ? eos : Lookup(padText, "pad_token");
        int? bos = bosText is null ? null : Lookup(bosText, "bos_token");
        var chat = template is null ? ChatFormat.None
            : template.Contains("<|im_start|>") ? ChatFormat.ChatML
            : template.Contains("<|start_header_id|>") ? ChatFormat.Llama3
            : ChatFormat.None;
        string? defaultSystem = chat == ChatFormat.ChatML ? ChatTemplates.DefaultChatMLSystem(template!) : null;
        return new BpeTokenizer(folder, bpe, vocab, added, special, ignoreMerges ? new Regex(pattern, RegexOptions.Compiled) : null,
            ignoreMerges, nfc, eos, pad, bos, chat, defaultSystem, files);
    }

    public int[] Encode(string text)
    {
        if (!ignoreMerges) return bpe.EncodeToIds(text).ToArray();
        var ids = new List<int>();
        int pos = 0;
        void Plain(string segment)
        {
            if (segment.Length == 0) return;
            if (nfc) segment = segment.Normalize(NormalizationForm.FormC);
            foreach (Match m in splitRegex!.Matches(segment))
            {
                if (m.Length == 0) continue;
                if (vocab.TryGetValue(ByteLevel.Encode(m.Value), out var whole)) ids.Add(whole);
                else ids.AddRange(bpe.EncodeToIds(m.Value));
            }
        }
        if (addedRegex is not null)
            foreach (Match m in addedRegex.Matches(text))
            {
                Plain(text[pos..m.Index]);
                ids.Add(added[m.Value]);
                pos = m.Index + m.Length;
            }
        Plain(text[pos..]);
        return ids.ToArray();
    }

    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = false)
    {
        var sb = new StringBuilder();
        var bytes = new List<byte>();
        void Flush()
        {
            if (bytes.Count == 0) return;
            sb.Append(Encoding.UTF8.GetString(bytes.ToArray()));
            bytes.Clear();
        }
        foreach (var id in ids)
        {
            if (id < 0 || id >= VocabSize || idToToken[id] is not { } tok)
                throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is not in this tokenizer ({Source}; {VocabSize} ids).");
            if (added.ContainsKey(tok) && !vocab.ContainsKey(tok))
            {
                Flush();
                if (!(skipSpecialTokens && isSpecial[id])) sb.Append(tok);
            }
            else if (!ByteLevel.TryAppendBytes(tok, bytes))
            {
                Flush();
                sb.Append(tok);
            }
        }
        Flush();
        return sb.ToString();
    }

    public string ApplyChatTemplate(string userMessage, string? systemMessage = null) =>
        ChatTemplates.Render(ChatFormat, userMessage, systemMessage ?? defaultSystem, BosId is int b ? idToToken[b] : null);

    public void Save(string folder)
    {
        foreach (var (name, bytes) in files)
            File.WriteAllBytes(Path.Combine(folder, name), bytes);
    }

    static JsonDocument ParseJson(byte[] bytes, string path)
    {
        try { return JsonDocument.Parse(bytes); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
    }

    static JsonElement Prop(JsonElement e, string name, string path) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v
            : throw new InvalidDataException($"{path}: missing field '{name}'.");

    /// <summary>eos_token etc. are either a string or {"content": string, ...}.</summary>
    static string? TokenText(JsonElement cfg, string field)
    {
        if (!cfg.TryGetProperty(field, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out var c) => c.GetString(),
            _ => null,
        };
    }

    /// <summary>The split regex of the pre-tokenizer: a Split step (alone or in a Sequence) followed by ByteLevel.</summary>
    static string FindSplitPattern(JsonElement root, string path)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{path}: no pre_tokenizer; expected a Split regex with ByteLevel.");
        var steps = pre.TryGetProperty("pretokenizers", out var seq) ? seq.EnumerateArray().ToList() : [pre];
        foreach (var s in steps)
        {
            string t = s.TryGetProperty("type", out var tt) ? tt.GetString() ?? "" : "";
            if (t == "Split" && s.TryGetProperty("pattern", out var p) && p.TryGetProperty("Regex", out var r))
                return r.GetString()!;
            if (t == "ByteLevel" && s.TryGetProperty("use_regex", out var ur) && ur.ValueKind == JsonValueKind.True)
                // GPT-2's own regex, used when ByteLevel splits by itself.
                return @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
        }
        throw new InvalidDataException($"{path}: pre_tokenizer has no Split regex (and ByteLevel does not split); unsupported layout.");
    }
}
