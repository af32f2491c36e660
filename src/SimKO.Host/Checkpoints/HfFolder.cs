using System.Text.Json;
using System.Text.Json.Nodes;
using SimKO.Data.Tokenizers;
using SimKO.Host.Model;
using SimKO.Host.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Checkpoints;

/// <summary>A model and its tokenizer, as loaded from an HF folder.</summary>
public sealed record HfModel(CausalLM Model, ITokenizer Tokenizer, string Folder) : IDisposable
{
    public ModelConfig Config => Model.Config;
    public void Dispose() => Model.Dispose();
}

/// <summary>Options of <see cref="HfFolder.Save"/>.</summary>
/// <param name="DType">dtype of the stored floating tensors; null keeps the model's</param>
/// <param name="MaxShardBytes">above this total the weights are split into
/// <c>model-0000i-of-0000n.safetensors</c> shards with an index (HF's default is 5 GB)</param>
public sealed record HfSaveOptions(ScalarType? DType = null, long MaxShardBytes = 5_000_000_000L);

/// <summary>
/// An HF model folder: <c>config.json</c>, <c>model.safetensors</c> (or shards plus
/// <c>model.safetensors.index.json</c>), <c>generation_config.json</c> and the tokenizer's files —
/// what transformers, vLLM and SGLang open.
/// </summary>
public static class HfFolder
{
    public const string ConfigFile = "config.json";
    public const string GenerationConfigFile = "generation_config.json";

    /// <summary>
    /// Writes the folder atomically: everything goes to a temporary sibling folder, which then
    /// replaces <paramref name="folder"/> by rename (an existing folder is moved aside first and
    /// removed after), so a crash leaves the old folder or the new one, never a mix.
    /// </summary>
    public static void Save(CausalLM model, ITokenizer tokenizer, string folder, HfSaveOptions? options = null)
    {
        options ??= new HfSaveOptions();
        var full = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar);
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        string tag = Guid.NewGuid().ToString("N")[..8];
        var tmp = Path.Combine(parent, $".{Path.GetFileName(full)}.tmp-{tag}");
        try
        {
            Directory.CreateDirectory(tmp);
            var dtype = options.DType ?? model.DType;
            WriteWeights(model, tmp, dtype, options.MaxShardBytes);
            File.WriteAllText(Path.Combine(tmp, ConfigFile), model.Config.ToJson(TorchRuntime.HfDTypeName(dtype)));
            File.WriteAllText(Path.Combine(tmp, GenerationConfigFile), GenerationConfig(model.Config, tokenizer));
            tokenizer.Save(tmp);
            if (Directory.Exists(full))
            {
                var old = Path.Combine(parent, $".{Path.GetFileName(full)}.old-{tag}");
                Directory.Move(full, old);
                Directory.Move(tmp, full);
                Directory.Delete(old, recursive: true);
            }
            else Directory.Move(tmp, full);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        }
    }

    /// <summary>
    /// Loads the model (parameters allocated directly on <paramref name="device"/> in
    /// <paramref name="dtype"/>, filled tensor by tensor) and the tokenizer of an HF folder.
    /// </summary>
    public static HfModel Load(string folder, Device device, ScalarType dtype)
    {
        var model = LoadModel(folder, device, dtype);
        try
        {
            return new HfModel(model, Tokenizers.FromFolder(folder), folder);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Loads only the model of an HF folder (see <see cref="Load"/>).</summary>
    public static CausalLM LoadModel(string folder, Device device, ScalarType dtype)
    {
        var config = ModelConfig.FromFile(Path.Combine(folder, ConfigFile));
        using var ckpt = Checkpoint.Open(folder);
        var model = CausalLM.CreateEmpty(config, device, dtype);
        try
        {
            // Tied models may still ship lm_head.weight; old checkpoints carry rotary inv_freq buffers.
            ckpt.LoadInto(model, name =>
                (config.TieWordEmbeddings && name == "lm_head.weight") || name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal));
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Writes <c>model.safetensors</c>, or shards plus an index when the weights exceed <paramref name="maxShardBytes"/>.</summary>
    static void WriteWeights(CausalLM model, string dir, ScalarType dtype, long maxShardBytes)
    {
        var items = model.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (kv.Key, kv.Value)).ToList();
        long total = items.Sum(i => SafeTensors.StoredBytes(i.Value, dtype));
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (total <= maxShardBytes)
        {
            SafeTensors.WriteTo(Path.Combine(dir, Checkpoint.SingleFile), items, dtype, meta);
            return;
        }
        var shards = new List<List<(string, Tensor)>> { new() };
        long current = 0;
        foreach (var item in items)
        {
            long b = SafeTensors.StoredBytes(item.Value, dtype);
            if (current > 0 && current + b > maxShardBytes) { shards.Add([]); current = 0; }
            shards[^1].Add(item);
            current += b;
        }
        var weightMap = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            var name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafeTensors.WriteTo(Path.Combine(dir, name), shards[i], dtype, meta);
            foreach (var (t, _) in shards[i]) weightMap[t] = name;
        }
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
        File.WriteAllText(Path.Combine(dir, Checkpoint.IndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    static string GenerationConfig(ModelConfig c, ITokenizer tok)
    {
        var eos = c.EosTokenIds.Length > 0 ? c.EosTokenIds : [tok.EosId];
        var o = new JsonObject
        {
            ["eos_token_id"] = eos.Length == 1 ? eos[0] : new JsonArray(eos.Select(e => (JsonNode?)e).ToArray()),
            ["pad_token_id"] = tok.PadId,
        };
        if ((c.BosTokenId ?? tok.BosId) is int b) o["bos_token_id"] = b;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
