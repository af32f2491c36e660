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

    /// <summary>HF's default largest shard ("5GB", decimal).</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    /// <summary>
    /// Write the model as an HF folder: config.json (its torch_dtype says <paramref name="dtype"/>),
    /// the weights in <paramref name="dtype"/> (default: the parameters' dtype) as one
    /// model.safetensors, or, when they exceed <paramref name="maxShardBytes"/>, as HF's shards
    /// model-0000i-of-0000N.safetensors with model.safetensors.index.json (metadata.total_size,
    /// weight_map); then the tokenizer's files. Tensors are written slice by slice (no host copy
    /// of a whole tensor); the folder appears whole or not at all (temporary sibling + rename).
    /// </summary>
    /// <param name="weights">tensors to write instead of the model's parameters (same names and shapes),
    /// e.g. the float32 master weights of a bf16 run exported in float32</param>
    public static void Save(CausalLM model, ITokenizer tokenizer, string folder, long maxShardBytes = DefaultMaxShardBytes, ScalarType? dtype = null,
        IReadOnlyDictionary<string, Tensor>? weights = null)
    {
        if (maxShardBytes < 1) throw new ArgumentOutOfRangeException(nameof(maxShardBytes), $"max shard size must be >= 1 byte, got {maxShardBytes}");
        var full = Path.GetFullPath(folder);
        var tmp = full + $".tmp-{Environment.ProcessId}";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        var parameters = model.NamedParameters();
        var type = dtype ?? parameters[0].Param.dtype;
        File.WriteAllText(Path.Combine(tmp, Config), model.Config.ToJson(ModelConfig.TorchDtypeName(type)));
        var shards = Shard(parameters.Select(p => (p.Name, Bytes: p.Param.numel() * SafeTensors.ElementSize(SafeTensors.CodeOf(type)))).ToList(), maxShardBytes);
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        var byName = parameters.ToDictionary(p => p.Name, p => weights is not null && weights.TryGetValue(p.Name, out var w) ? w : (Tensor)p.Param);
        if (shards.Count == 1)
        {
            using var s = File.Create(Path.Combine(tmp, Weights));
            SafeTensors.Write(s, byName, meta, type);
        }
        else
        {
            var weightMap = new JsonObject();
            long total = 0;
            for (int i = 0; i < shards.Count; i++)
            {
                var file = ShardName(i + 1, shards.Count);
                var part = shards[i].ToDictionary(n => n.Name, n => byName[n.Name]);
                using (var s = File.Create(Path.Combine(tmp, file)))
                    SafeTensors.Write(s, part, meta, type);
                foreach (var (name, bytes) in shards[i].OrderBy(n => n.Name, StringComparer.Ordinal)) { weightMap[name] = file; total += bytes; }
            }
            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
            File.WriteAllText(Path.Combine(tmp, Index), index.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        }
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

    /// <summary>HF's shard file name: model-00001-of-00004.safetensors.</summary>
    public static string ShardName(int i, int n) => $"model-{i:00000}-of-{n:00000}.safetensors";

    /// <summary>Tensors in order into shards of at most <paramref name="maxBytes"/> each (a tensor
    /// larger than that gets a shard of its own, as HF does).</summary>
    public static List<List<(string Name, long Bytes)>> Shard(IReadOnlyList<(string Name, long Bytes)> tensors, long maxBytes)
    {
        var shards = new List<List<(string, long)>> { new() };
        long size = 0;
        foreach (var t in tensors)
        {
            if (size > 0 && size + t.Bytes > maxBytes) { shards.Add(new()); size = 0; }
            shards[^1].Add(t);
            size += t.Bytes;
        }
        return shards;
    }

    /// <summary>Tensors of a folder: one file, or every shard named by the index.</summary>
    public static Dictionary<string, Tensor> ReadWeights(string folder)
    {
        var single = Path.Combine(folder, Weights);
        if (File.Exists(single)) return SafeTensors.Read(single);
        var index = Path.Combine(folder, Index);
        if (!File.Exists(index)) throw new FileNotFoundException($"{folder}: neither {Weights} nor {Index} is there");
        var map = WeightMap(folder, index);
        var result = new Dictionary<string, Tensor>();
        foreach (var file in map.Values.Distinct())
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

    /// <summary>
    /// Load a model folder onto a device and dtype: the model is created there, then each shard's
    /// tensors are read slice by slice straight into their parameters (converted on the way), so
    /// neither a float32 CPU copy of the model nor a whole shard is ever held in host memory.
    /// Every missing, unexpected or mis-shaped tensor is reported at once, before any is read.
    /// </summary>
    public static CausalLM LoadModel(string folder, Device device, ScalarType dtype)
    {
        var config = ModelConfig.Load(Path.Combine(folder, Config));
        var files = WeightFiles(folder);
        var headers = files.Select(f => (Path: f, Header: SafeTensors.ReadHeader(f))).ToList();
        var model = new CausalLM(config, device, dtype);
        try
        {
            var expected = model.NamedParameters().ToDictionary(p => p.Name, p => p.Param);
            var problems = new List<string>();
            var seen = new HashSet<string>();
            foreach (var (path, (entries, _, _)) in headers)
                foreach (var e in entries)
                {
                    if (!expected.TryGetValue(e.Name, out var p))
                    {
                        if (!(e.Name == "lm_head.weight" && config.TieWordEmbeddings)) problems.Add($"unexpected tensor '{e.Name}' in {Path.GetFileName(path)}");
                    }
                    else if (!e.Shape.SequenceEqual(p.shape))
                        problems.Add($"tensor '{e.Name}' in {Path.GetFileName(path)} has shape [{string.Join(", ", e.Shape)}], expected [{string.Join(", ", p.shape)}]");
                    else if (!seen.Add(e.Name)) problems.Add($"tensor '{e.Name}' appears in more than one shard");
                }
            foreach (var (name, p) in expected.Where(kv => !seen.Contains(kv.Key)))
                problems.Add($"missing tensor '{name}' (expected shape [{string.Join(", ", p.shape)}])");
            if (problems.Count > 0) throw new InvalidDataException($"{folder}: the weights do not fit the model: {string.Join("; ", problems)}");
            foreach (var (path, (entries, dataStart, _)) in headers)
            {
                using var f = File.OpenRead(path);
                foreach (var e in entries)
                    if (expected.TryGetValue(e.Name, out var p)) SafeTensors.ReadInto(f, path, dataStart, e, p);
            }
            CheckFinite(expected.Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value)), folder);
        }
        catch { model.Dispose(); throw; }
        return model;
    }

    /// <summary>The weight files of a folder: model.safetensors, or the shards its index names.</summary>
    public static List<string> WeightFiles(string folder)
    {
        var single = Path.Combine(folder, Weights);
        if (File.Exists(single)) return [single];
        var index = Path.Combine(folder, Index);
        if (!File.Exists(index)) throw new FileNotFoundException($"{folder}: neither {Weights} nor {Index} is there");
        var files = WeightMap(folder, index).Values.Distinct().ToList();
        var absent = files.Where(f => !File.Exists(Path.Combine(folder, f))).ToList();
        if (absent.Count > 0) throw new FileNotFoundException($"{index}: shard(s) named in weight_map are missing: {string.Join(", ", absent)}");
        return files.Select(f => Path.Combine(folder, f)).ToList();
    }

    /// <summary>An index's weight_map (tensor → shard file); every file must be a plain relative name
    /// inside <paramref name="folder"/> (no absolute path, no "..", no link out of it).</summary>
    static Dictionary<string, string> WeightMap(string folder, string index)
    {
        JsonObject map;
        try { map = (JsonNode.Parse(File.ReadAllText(index))?["weight_map"] as JsonObject) ?? throw new InvalidDataException($"{index}: missing 'weight_map'"); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{index}: not valid JSON ({e.Message})"); }
        var root = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        var result = new Dictionary<string, string>();
        try
        {
            foreach (var (name, node) in map)
            {
                if (node is not JsonValue v || !v.TryGetValue<string>(out var file) || file.Length == 0)
                    throw new InvalidDataException($"{index}: weight_map['{name}'] must be a shard file name");
                var full = Path.GetFullPath(Path.Combine(folder, file));
                if (Path.IsPathRooted(file) || !full.StartsWith(root, StringComparison.Ordinal))
                    throw new InvalidDataException($"{index}: weight_map['{name}'] names '{file}', outside the model folder {folder}");
                if (File.Exists(full) && new FileInfo(full).ResolveLinkTarget(true) is { } target && !Path.GetFullPath(target.FullName).StartsWith(root, StringComparison.Ordinal))
                    throw new InvalidDataException($"{index}: weight_map['{name}'] names '{file}', a link to {target.FullName} outside the model folder {folder}");
                result[name] = file;
            }
        }
        catch (ArgumentException e) { throw new InvalidDataException($"{index}: weight_map is not valid ({e.Message})"); }
        return result;
    }

    /// <summary>Every floating-point tensor must be finite: a NaN or Inf weight would make every sampled
    /// request fail. Throws naming the first bad tensor and how many of its values are not finite.</summary>
    public static void CheckFinite(IEnumerable<KeyValuePair<string, Tensor>> tensors, string source)
    {
        using var _ = no_grad();
        foreach (var (name, t) in tensors)
        {
            if (!t.is_floating_point()) continue;
            using var finite = isfinite(t);
            using var all = finite.all();
            if (all.item<bool>()) continue;
            using var bad = finite.logical_not().sum();
            throw new InvalidDataException($"{source}: tensor '{name}' holds {bad.item<long>()} non-finite values (NaN or Inf); the weights were not loaded");
        }
    }

    /// <summary>The tokenizer saved in a folder: a character tokenizer of a built-in task, or an HF byte-level BPE (tokenizer.json).</summary>
    public static ITokenizer LoadTokenizer(string folder)
    {
        if (File.Exists(Path.Combine(folder, CharTokenizer.FileName))) return CharTokenizer.Load(folder);
        if (HfBpeTokenizer.IsPresent(folder)) return HfBpeTokenizer.FromFolder(folder);
        throw new FileNotFoundException($"{folder}: no tokenizer files ({CharTokenizer.FileName} or tokenizer.json)");
    }
}
