using System.Text.Json;
using System.Text.Json.Nodes;

namespace SimKO.Host.Model;

/// <summary>The two decoder families this model class reproduces (HF <c>model_type</c>).</summary>
public enum Architecture
{
    /// <summary>Qwen2 / Qwen2.5 / Qwen2.5-Math: biases on q, k and v projections.</summary>
    Qwen2,
    /// <summary>Llama 2/3/3.1/3.2: biases only when <c>attention_bias</c> / <c>mlp_bias</c> say so.</summary>
    Llama,
}

/// <summary>
/// Llama-3 rotary frequency scaling (<c>rope_scaling</c> with <c>rope_type: "llama3"</c>): long
/// wavelengths are divided by <see cref="Factor"/>, short ones kept, the band between blended.
/// </summary>
public sealed record RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings);

/// <summary>
/// The architecture hyper-parameters of a <see cref="CausalLM"/>, read from and written to an HF
/// <c>config.json</c>. Fields not modelled here are kept and written back unchanged.
/// </summary>
public sealed record ModelConfig
{
    public Architecture Architecture { get; init; } = Architecture.Qwen2;
    public int VocabSize { get; init; }
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumHiddenLayers { get; init; }
    public int NumAttentionHeads { get; init; }
    /// <summary>Number of K/V heads; fewer than <see cref="NumAttentionHeads"/> is grouped-query attention.</summary>
    public int NumKeyValueHeads { get; init; }
    /// <summary>Per-head width; HF default is hidden_size / num_attention_heads.</summary>
    public int HeadDim { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 32768;
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Bias on q/k/v projections (always true for Qwen2, <c>attention_bias</c> for Llama).</summary>
    public bool QkvBias { get; init; }
    /// <summary>Bias on o_proj (Llama's <c>attention_bias</c> puts one there too; Qwen2 never).</summary>
    public bool OutputBias { get; init; }
    /// <summary>Bias on the MLP projections (Llama's <c>mlp_bias</c>).</summary>
    public bool MlpBias { get; init; }
    public double InitializerRange { get; init; } = 0.02;
    public int? BosTokenId { get; init; }
    public int[] EosTokenIds { get; init; } = [];
    /// <summary>The original JSON (unknown fields are written back from it); null for built configs.</summary>
    public JsonObject? Source { get; init; }

    /// <summary>
    /// A small config of either family for CPU training and tests. <paramref name="kvHeads"/> below
    /// <paramref name="heads"/> gives grouped-query attention.
    /// </summary>
    public static ModelConfig Tiny(Architecture arch, int vocabSize, int hiddenSize = 64, int layers = 2, int heads = 4,
        int kvHeads = 2, int? intermediateSize = null, bool tieWordEmbeddings = true, double ropeTheta = 10000.0,
        RopeScaling? ropeScaling = null, int maxPositions = 4096, int? eosTokenId = null, bool? attentionBias = null)
    {
        bool llamaBias = attentionBias ?? false;
        var c = new ModelConfig
        {
            Architecture = arch,
            VocabSize = vocabSize,
            HiddenSize = hiddenSize,
            IntermediateSize = intermediateSize ?? hiddenSize * 8 / 3 / 8 * 8,
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = hiddenSize / heads,
            MaxPositionEmbeddings = maxPositions,
            RmsNormEps = 1e-6,
            RopeTheta = ropeTheta,
            RopeScaling = ropeScaling,
            TieWordEmbeddings = tieWordEmbeddings,
            QkvBias = arch == Architecture.Qwen2 || llamaBias,
            OutputBias = arch == Architecture.Llama && llamaBias,
            MlpBias = false,
            EosTokenIds = eosTokenId is int e ? [e] : [],
        };
        c.ThrowIfInvalid("Tiny config");
        return c;
    }

    /// <summary>Every problem of this config at once (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var p = new List<string>();
        void Positive(string name, double v) { if (!(v > 0)) p.Add($"{name} must be positive (found {v})."); }
        Positive("vocab_size", VocabSize);
        Positive("hidden_size", HiddenSize);
        Positive("intermediate_size", IntermediateSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("num_key_value_heads", NumKeyValueHeads);
        Positive("head_dim", HeadDim);
        Positive("rms_norm_eps", RmsNormEps);
        Positive("rope_theta", RopeTheta);
        if (NumKeyValueHeads > 0 && NumAttentionHeads % NumKeyValueHeads != 0)
            p.Add($"num_attention_heads ({NumAttentionHeads}) must be a multiple of num_key_value_heads ({NumKeyValueHeads}).");
        if (HeadDim % 2 != 0) p.Add($"head_dim ({HeadDim}) must be even for rotary embeddings.");
        if (RopeScaling is { } r)
        {
            if (!(r.Factor >= 1)) p.Add($"rope_scaling.factor must be >= 1 (found {r.Factor}).");
            if (!(r.HighFreqFactor > r.LowFreqFactor)) p.Add($"rope_scaling.high_freq_factor ({r.HighFreqFactor}) must exceed low_freq_factor ({r.LowFreqFactor}).");
            if (r.OriginalMaxPositionEmbeddings <= 0) p.Add("rope_scaling.original_max_position_embeddings must be positive.");
        }
        foreach (var e in EosTokenIds)
            if (e < 0 || e >= VocabSize) p.Add($"eos_token_id {e} is outside the vocabulary [0, {VocabSize}).");
        return p;
    }

    /// <summary>Throws one exception naming <paramref name="source"/> and every problem.</summary>
    public void ThrowIfInvalid(string source)
    {
        var problems = Validate();
        if (problems.Count > 0)
            throw new InvalidDataException($"{source}: invalid model config:\n  " + string.Join("\n  ", problems));
    }

    /// <summary>Reads an HF <c>config.json</c> (model_type qwen2 or llama).</summary>
    public static ModelConfig FromFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: config.json not found.", path);
        return FromJson(File.ReadAllText(path), path);
    }

    /// <summary>Parses HF config JSON; <paramref name="source"/> names it in errors.</summary>
    public static ModelConfig FromJson(string json, string source)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new InvalidDataException($"{source}: config is not a JSON object."); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: config.json is not valid JSON: {e.Message}", e); }

        var problems = new List<string>();
        string modelType = Str(o, "model_type") ?? "";
        Architecture arch;
        switch (modelType)
        {
            case "qwen2": arch = Architecture.Qwen2; break;
            case "llama": arch = Architecture.Llama; break;
            default:
                throw new InvalidDataException($"{source}: model_type '{modelType}' is not supported (supported: qwen2, llama).");
        }
        int Req(string name)
        {
            var v = Int(o, name, source);
            if (v is null) { problems.Add($"missing field '{name}'."); return 0; }
            return v.Value;
        }
        int hidden = Req("hidden_size"), heads = Req("num_attention_heads");
        int vocab = Req("vocab_size"), inter = Req("intermediate_size"), layers = Req("num_hidden_layers");
        int kv = Int(o, "num_key_value_heads", source) ?? heads;
        int headDim = Int(o, "head_dim", source) ?? (heads > 0 ? hidden / heads : 0);
        if (arch == Architecture.Qwen2 && o["use_sliding_window"] is JsonValue sw && sw.TryGetValue<bool>(out var useSw) && useSw)
            problems.Add("use_sliding_window = true is not supported (every Qwen2.5 release sets it false).");
        if (Str(o, "hidden_act") is { } act && act != "silu")
            problems.Add($"hidden_act '{act}' is not supported (only silu).");

        RopeScaling? scaling = null;
        if (o["rope_scaling"] is JsonObject rs)
        {
            string type = Str(rs, "rope_type") ?? Str(rs, "type") ?? "default";
            if (type == "llama3")
            {
                scaling = new RopeScaling(
                    Dbl(rs, "factor", source) ?? 8.0,
                    Dbl(rs, "low_freq_factor", source) ?? 1.0,
                    Dbl(rs, "high_freq_factor", source) ?? 4.0,
                    Int(rs, "original_max_position_embeddings", source) ?? 8192);
            }
            else if (type != "default")
                problems.Add($"rope_scaling type '{type}' is not supported (supported: llama3, default).");
        }
        bool attnBias = Bool(o, "attention_bias") ?? false;
        var eos = new List<int>();
        switch (o["eos_token_id"])
        {
            case JsonArray arr: foreach (var x in arr) if (x is JsonValue v && v.TryGetValue<int>(out var i)) eos.Add(i); break;
            case JsonValue v when v.TryGetValue<int>(out var i): eos.Add(i); break;
        }
        if (problems.Count > 0)
            throw new InvalidDataException($"{source}: invalid model config:\n  " + string.Join("\n  ", problems));
        var c = new ModelConfig
        {
            Architecture = arch,
            VocabSize = vocab,
            HiddenSize = hidden,
            IntermediateSize = inter,
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kv,
            HeadDim = headDim,
            MaxPositionEmbeddings = Int(o, "max_position_embeddings", source) ?? 32768,
            RmsNormEps = Dbl(o, "rms_norm_eps", source) ?? 1e-6,
            RopeTheta = Dbl(o, "rope_theta", source) ?? 10000.0,
            RopeScaling = scaling,
            TieWordEmbeddings = Bool(o, "tie_word_embeddings") ?? false,
            QkvBias = arch == Architecture.Qwen2 || attnBias,
            OutputBias = arch == Architecture.Llama && attnBias,
            MlpBias = arch == Architecture.Llama && (Bool(o, "mlp_bias") ?? false),
            InitializerRange = Dbl(o, "initializer_range", source) ?? 0.02,
            BosTokenId = Int(o, "bos_token_id", source),
            EosTokenIds = eos.ToArray(),
            Source = o,
        };
        c.ThrowIfInvalid(source);
        return c;
    }

    /// <summary>
    /// HF <c>config.json</c> text for this config, with <c>torch_dtype</c> set to
    /// <paramref name="torchDtype"/>. Fields of the original file that are not modelled here are kept.
    /// </summary>
    public string ToJson(string torchDtype)
    {
        var o = Source is null ? new JsonObject() : (JsonObject)Source.DeepClone();
        bool qwen = Architecture == Architecture.Qwen2;
        o["architectures"] = new JsonArray(qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM");
        o["model_type"] = qwen ? "qwen2" : "llama";
        o["vocab_size"] = VocabSize;
        o["hidden_size"] = HiddenSize;
        o["intermediate_size"] = IntermediateSize;
        o["num_hidden_layers"] = NumHiddenLayers;
        o["num_attention_heads"] = NumAttentionHeads;
        o["num_key_value_heads"] = NumKeyValueHeads;
        if (HeadDim != HiddenSize / NumAttentionHeads || o.ContainsKey("head_dim")) o["head_dim"] = HeadDim;
        o["hidden_act"] = "silu";
        o["max_position_embeddings"] = MaxPositionEmbeddings;
        o["rms_norm_eps"] = RmsNormEps;
        o["rope_theta"] = RopeTheta;
        o["rope_scaling"] = RopeScaling is { } r
            ? new JsonObject
            {
                ["rope_type"] = "llama3",
                ["factor"] = r.Factor,
                ["low_freq_factor"] = r.LowFreqFactor,
                ["high_freq_factor"] = r.HighFreqFactor,
                ["original_max_position_embeddings"] = r.OriginalMaxPositionEmbeddings,
            }
            : null;
        o["tie_word_embeddings"] = TieWordEmbeddings;
        if (!qwen)
        {
            o["attention_bias"] = QkvBias;
            o["mlp_bias"] = MlpBias;
        }
        else if (!o.ContainsKey("use_sliding_window")) o["use_sliding_window"] = false;
        o["initializer_range"] = InitializerRange;
        if (BosTokenId is int b) o["bos_token_id"] = b;
        if (EosTokenIds.Length == 1) o["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Length > 1) o["eos_token_id"] = new JsonArray(EosTokenIds.Select(e => (JsonNode?)e).ToArray());
        o["torch_dtype"] = torchDtype;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    static string? Str(JsonObject o, string name) =>
        o[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    static bool? Bool(JsonObject o, string name) =>
        o[name] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;

    static int? Int(JsonObject o, string name, string source)
    {
        var n = o[name];
        if (n is null) return null;
        if (n is JsonValue v)
        {
            if (v.TryGetValue<int>(out var i)) return i;
            if (v.TryGetValue<double>(out var d) && d == System.Math.Floor(d) && System.Math.Abs(d) < int.MaxValue) return (int)d;
        }
        throw new InvalidDataException($"{source}: field '{name}' must be an integer (found {n.ToJsonString()}).");
    }

    static double? Dbl(JsonObject o, string name, string source)
    {
        var n = o[name];
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue<double>(out var d)) return d;
        throw new InvalidDataException($"{source}: field '{name}' must be a number (found {n.ToJsonString()}).");
    }
}
