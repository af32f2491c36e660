using System.Text.Json.Nodes;
using SimKO.Data.Tokenizers;
using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Checkpoints;

/// <summary>
/// Models as HF folders: config.json, model.safetensors (or shards with model.safetensors.index.json)
/// and the tokenizer's files. Saving writes a temporary sibling folder and renames it into place.
/// Loading reports every missing, unexpected or mis-shaped tensor by name.
/// </summary>
public static class HfFolder
{
    public const string Config = "config.json", Weights = "model.safetensors", Index = "model.safetensors.index.json";

    public static void Save(CausalLM model, ITokenizer tokenizer, string folder)
    {
        var full = Path.GetFullPath(folder);
        var tmp = full + $".tmp-{Environment.ProcessId}";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        File.WriteAllText(Path.Combine(tmp, Config), model.Config.ToJson());
        var tensors = model.NamedParameters().ToDictionary(p => p.Name, p => (Tensor)p.Param);
        using (var s = File.Create(Path.Combine(tmp, Weights)))
            SafeTensors.Write(s, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        tokenizer.Save(tmp);
        if (Directory.Exists(full))
        {
            var old = full + $".old-{Environment.ProcessId}";
            Directory.Move(full, old);
            Directory.Move(tmp, full);
            Directory.Delete(old, true);
        }
        else Directory.Move(tmp, full);
    }

    /// <summary>Tensors of a folder: one file, or every shard named by the index.</summary>
    public static Dictionary<string, Tensor> ReadWeights(string folder)
    {
        var single = Path.Combine(folder, Weights);
        if (File.Exists(single)) return SafeTensors.Read(single);
        var index = Path.Combine(folder, Index);
        if (!File.Exists(index)) throw new FileNotFoundException($"{folder}: neither {Weights} nor {Index} is there");
        var map = (JsonNode.Parse(File.ReadAllText(index))?["weight_map"] as JsonObject)
            ?? throw new InvalidDataException($"{index}: missing 'weight_map'");
        var result = new Dictionary<string, Tensor>();
        foreach (var file in map.Select(kv => kv.Value!.GetValue<string>()).Distinct())
            foreach (var (name, t) in SafeTensors.Read(Path.Combine(folder, file)))
                result[name] = t;
        var missing = map.Select(kv => kv.Key).Where(k => !result.ContainsKey(k)).ToList();
        if (missing.Count > 0) throw new InvalidDataException($"{index}: tensors listed but not found in their shard: {string.Join(", ", missing)}");
        return result;
    }

    /// <summary>Copy named tensors into the model; every problem is reported at once.</summary>
    public static void LoadInto(CausalLM model, IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        var problems = new List<string>();
        var expected = model.NamedParameters().ToDictionary(p => p.Name, p => p.Param);
        foreach (var (name, p) in expected)
        {
            if (!tensors.TryGetValue(name, out var t)) problems.Add($"missing tensor '{name}' (expected shape [{string.Join(", ", p.shape)}])");
            else if (!t.shape.SequenceEqual(p.shape)) problems.Add($"tensor '{name}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", p.shape)}]");
        }
        foreach (var name in tensors.Keys.Where(k => !expected.ContainsKey(k) && !(k == "lm_head.weight" && model.Config.TieWordEmbeddings)))
            problems.Add($"unexpected tensor '{name}'");
        if (problems.Count > 0) throw new InvalidDataException($"{source}: the weights do not fit the model: {string.Join("; ", problems)}");
        using var _ = no_grad();
        foreach (var (name, p) in expected) p.copy_(tensors[name]);
    }

    /// <summary>Load a model folder onto a device and dtype.</summary>
    public static CausalLM LoadModel(string folder, Device device, ScalarType dtype)
    {
        var config = ModelConfig.Load(Path.Combine(folder, Config));
        var model = new CausalLM(config);
        var tensors = ReadWeights(folder);
        try { LoadInto(model, tensors, folder); }
        finally { foreach (var t in tensors.Values) t.Dispose(); }
        return model.MoveTo(device, dtype);
    }

    /// <summary>The tokenizer saved in a folder: a character tokenizer of a built-in task, or an HF byte-level BPE (tokenizer.json).</summary>
    public static ITokenizer LoadTokenizer(string folder)
    {
        if (File.Exists(Path.Combine(folder, CharTokenizer.FileName))) return CharTokenizer.Load(folder);
        if (HfBpeTokenizer.IsPresent(folder)) return HfBpeTokenizer.FromFolder(folder);
        throw new FileNotFoundException($"{folder}: no tokenizer files ({CharTokenizer.FileName} or tokenizer.json)");
    }
}
