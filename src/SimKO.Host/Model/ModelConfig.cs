using System.Text.Json;
using System.Text.Json.Nodes;

namespace SimKO.Host.Model;

/// <summary>
/// Decoder configuration with the fields of HF's Qwen2 and Llama config.json (same names), so a
/// checkpoint folder's config reads as is and a trained model writes one other tools open.
/// </summary>
public sealed record ModelConfig(
    string ModelType,
    int VocabSize,
    int HiddenSize,
    int IntermediateSize,
    int NumHiddenLayers,
    int NumAttentionHeads,
    int NumKeyValueHeads,
    double RmsNormEps,
    double RopeTheta,
    bool TieWordEmbeddings,
    bool AttentionBias,
    int MaxPositionEmbeddings,
    RopeScaling? RopeScaling = null,
    int? BosTokenId = null,
    int? EosTokenId = null)
{
    public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>A small Qwen2-style model for built-in tasks (q/k/v biases, tied head).</summary>
    public static ModelConfig Tiny(int vocab, int dModel = 128, int layers = 2, int heads = 4, int kvHeads = 4, int? ffn = null, int maxPositions = 256) =>
        new("qwen2", vocab, dModel, ffn ?? 4 * dModel, layers, heads, kvHeads, 1e-6, 10000.0, true, true, maxPositions);

    /// <summary>Throws when a prompt of <paramref name="promptTokens"/> plus <paramref name="maxNewTokens"/>
    /// new tokens would not fit the model's context (max_position_embeddings): checked before the KV
    /// cache for them is allocated (1e9 new tokens would ask for terabytes).</summary>
    public void CheckSequenceLength(long promptTokens, long maxNewTokens, string setting = "max_new_tokens")
    {
        if (maxNewTokens < 0) throw new ArgumentException($"{setting} is {maxNewTokens}; expected >= 0");
        if (promptTokens + maxNewTokens > MaxPositionEmbeddings)
            throw new ArgumentException($"{setting} = {maxNewTokens} with prompts of up to {promptTokens} tokens needs {promptTokens + maxNewTokens} positions; " +
                $"the model's context (max_position_embeddings) is {MaxPositionEmbeddings}: lower {setting} to at most {System.Math.Max(0, MaxPositionEmbeddings - promptTokens)}");
    }

    /// <summary>Every problem at once (empty = valid).</summary>
    public List<string> Validate()
    {
        var p = new List<string>();
        if (VocabSize < 1) p.Add($"vocab_size must be >= 1, got {VocabSize}");
        if (HiddenSize < 1 || NumAttentionHeads < 1 || HiddenSize % NumAttentionHeads != 0)
            p.Add($"hidden_size ({HiddenSize}) must be a positive multiple of num_attention_heads ({NumAttentionHeads})");
        else if (HeadDim % 2 != 0) p.Add($"head dimension {HeadDim} must be even for rotary embeddings");
        if (NumKeyValueHeads < 1 || NumAttentionHeads % NumKeyValueHeads != 0)
            p.Add($"num_attention_heads ({NumAttentionHeads}) must be a multiple of num_key_value_heads ({NumKeyValueHeads})");
        if (NumHiddenLayers < 1) p.Add($"num_hidden_layers must be >= 1, got {NumHiddenLayers}");
        if (IntermediateSize < 1) p.Add($"intermediate_size must be >= 1, got {IntermediateSize}");
        if (!(RmsNormEps > 0)) p.Add($"rms_norm_eps must be > 0, got {RmsNormEps}");
        if (!(RopeTheta > 0)) p.Add($"rope_theta must be > 0, got {RopeTheta}");
        if (ModelType is not ("qwen2" or "llama")) p.Add($"model_type '{ModelType}' is not supported (qwen2, llama)");
        return p;
    }

    public static ModelConfig Load(string path)
    {
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException("not a JSON object"); }
        catch (Exception e) when (e is JsonException or InvalidDataException or IOException)
        { throw new InvalidDataException($"{path}: cannot read the model config ({e.Message})"); }
        int Int(string k, int? def = null) => o[k] is JsonValue v && v.TryGetValue<int>(out var x) ? x
            : def ?? throw new InvalidDataException($"{path}: missing integer field '{k}'");
        double Num(string k, double def) => o[k] switch
        {
            null => def,
            JsonValue v when v.TryGetValue<double>(out var x) => x,
            _ => throw new InvalidDataException($"{path}: field '{k}' must be a number"),
        };
        string? Text(JsonObject from, string k, string field) => from[k] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var x) => x,
            _ => throw new InvalidDataException($"{path}: field '{field}' must be a string"),
        };
        bool? Flag(string k) => o[k] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<bool>(out var x) => x,
            _ => throw new InvalidDataException($"{path}: field '{k}' must be true or false"),
        };
        var type = Text(o, "model_type", "model_type") ?? throw new InvalidDataException($"{path}: missing field 'model_type'");
        RopeScaling? scaling = null;
        if (o["rope_scaling"] is JsonObject rs)
        {
            var kind = Text(rs, "rope_type", "rope_scaling.rope_type") ?? Text(rs, "type", "rope_scaling.type");
            double Scale(string k) => rs[k] is JsonValue v && v.TryGetValue<double>(out var x) && double.IsFinite(x) && x > 0 ? x
                : throw new InvalidDataException($"{path}: rope_scaling (llama3) needs a positive number 'rope_scaling.{k}'{(rs[k] is null ? ", which is missing" : $", got {rs[k]!.ToJsonString()}")}");
            if (kind == "llama3")
            {
                var original = Scale("original_max_position_embeddings");
                if (original != System.Math.Floor(original) || original > int.MaxValue)
                    throw new InvalidDataException($"{path}: field 'rope_scaling.original_max_position_embeddings' must be an integer, got {original}");
                scaling = new RopeScaling(Scale("factor"), Scale("low_freq_factor"), Scale("high_freq_factor"), (int)original);
            }
            else if (kind is not null and not "default")
                throw new InvalidDataException($"{path}: rope_scaling type '{kind}' is not supported (llama3)");
        }
        else if (o["rope_scaling"] is { } other && other.GetValueKind() != System.Text.Json.JsonValueKind.Null)
            throw new InvalidDataException($"{path}: field 'rope_scaling' must be an object or null");
        int? eos = o["eos_token_id"] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<int>(out var e) => e,
            JsonArray a when a.Count > 0 && a[0] is JsonValue a0 && a0.TryGetValue<int>(out var e0) => e0,
            JsonArray { Count: 0 } => null,
            var x when x.GetValueKind() == System.Text.Json.JsonValueKind.Null => null,
            _ => throw new InvalidDataException($"{path}: field 'eos_token_id' must be an integer or a list of integers"),
        };
        var heads = Int("num_attention_heads");
        var cfg = new ModelConfig(type, Int("vocab_size"), Int("hidden_size"), Int("intermediate_size"), Int("num_hidden_layers"),
            heads, Int("num_key_value_heads", heads), Num("rms_norm_eps", 1e-6), Num("rope_theta", 10000),
            Flag("tie_word_embeddings") ?? false,
            Flag("attention_bias") ?? type == "qwen2",
            Int("max_position_embeddings", 4096), scaling,
            o["bos_token_id"] is JsonValue b && b.TryGetValue<int>(out var bi) ? bi : null, eos);
        var problems = cfg.Validate();
        if (problems.Count > 0) throw new InvalidDataException($"{path}: {string.Join("; ", problems)}");
        return cfg;
    }

    /// <summary>HF's name of a torch dtype, as config.json's <c>torch_dtype</c> writes it.</summary>
    public static string TorchDtypeName(TorchSharp.torch.ScalarType dtype) => dtype switch
    {
        TorchSharp.torch.ScalarType.Float32 => "float32", TorchSharp.torch.ScalarType.BFloat16 => "bfloat16",
        TorchSharp.torch.ScalarType.Float16 => "float16", TorchSharp.torch.ScalarType.Float64 => "float64",
        _ => throw new ArgumentException($"dtype {dtype} is not a weight dtype (float32, bfloat16, float16, float64)"),
    };

    /// <summary>config.json text; <paramref name="torchDtype"/> is the dtype the weights are stored in.</summary>
    public string ToJson(string torchDtype = "float32")
    {
        var o = new JsonObject
        {
            ["model_type"] = ModelType,
            ["architectures"] = new JsonArray(ModelType == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"),
            ["vocab_size"] = VocabSize, ["hidden_size"] = HiddenSize, ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers, ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads, ["rms_norm_eps"] = RmsNormEps, ["rope_theta"] = RopeTheta,
            ["tie_word_embeddings"] = TieWordEmbeddings, ["attention_bias"] = AttentionBias,
            ["max_position_embeddings"] = MaxPositionEmbeddings, ["hidden_act"] = "silu", ["torch_dtype"] = torchDtype,
        };
        if (BosTokenId is int bos) o["bos_token_id"] = bos;
        if (EosTokenId is int eos) o["eos_token_id"] = eos;
        if (RopeScaling is { } r)
            o["rope_scaling"] = new JsonObject { ["rope_type"] = "llama3", ["factor"] = r.Factor, ["low_freq_factor"] = r.LowFreqFactor,
                ["high_freq_factor"] = r.HighFreqFactor, ["original_max_position_embeddings"] = r.OriginalMaxPositionEmbeddings };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}

/// <summary>Llama-3 rotary scaling (rope_type "llama3").</summary>
public sealed record RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings);
