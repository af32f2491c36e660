using System.Text.Json;
using System.Text.Json.Nodes;
using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Checkpoints;

/// <summary>
/// LoRA adapters as PEFT folders (issue 22): adapter_config.json (peft_type LORA, r, lora_alpha,
/// target_modules, lora_dropout, bias none, task_type CAUSAL_LM, base_model_name_or_path,
/// use_rslora) and adapter_model.safetensors with PEFT's tensor names
/// (base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight [r, in], ….lora_B.weight [out, r]),
/// so HF PEFT's PeftModel.from_pretrained, vLLM and SGLang read what we write, and we read theirs.
/// A malformed adapter is an error naming the file and the tensor or field.
/// </summary>
public static class PeftAdapter
{
    public const string Config = "adapter_config.json", Weights = "adapter_model.safetensors";
    /// <summary>What PEFT puts before the model's own parameter names.</summary>
    public const string Prefix = "base_model.model.";

    /// <summary>Write the model's adapters as a PEFT folder (temporary sibling + rename). Tensors are
    /// written in <paramref name="dtype"/> (default the adapters' own), from <paramref name="weights"/>
    /// when given (the optimizer's float32 masters of a bf16 run), else from the model.</summary>
    public static void Save(CausalLM model, string folder, string baseModel, ScalarType? dtype = null, IReadOnlyDictionary<string, Tensor>? weights = null)
    {
        var lora = model.Lora ?? throw new InvalidOperationException("the model has no LoRA adapters to save");
        var full = Path.GetFullPath(folder);
        var tmp = full + $".tmp-{Environment.ProcessId}";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        File.WriteAllText(Path.Combine(tmp, Config), ConfigJson(lora, baseModel).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var tensors = model.LoraParameters().ToDictionary(p => Prefix + p.Name,
            p => weights is not null && weights.TryGetValue(p.Name, out var w) ? w : (Tensor)p.Param);
        using (var s = File.Create(Path.Combine(tmp, Weights)))
            SafeTensors.Write(s, tensors, new Dictionary<string, string> { ["format"] = "pt" }, dtype);
        if (Directory.Exists(full))
        {
            var old = full + $".old-{Environment.ProcessId}";
            Directory.Move(full, old);
            Directory.Move(tmp, full);
            Directory.Delete(old, true);
        }
        else Directory.Move(tmp, full);
    }

    /// <summary>PEFT's LoraConfig as JSON (the fields PEFT needs to rebuild the adapter).</summary>
    public static JsonObject ConfigJson(LoraSettings s, string baseModel) => new()
    {
        ["peft_type"] = "LORA",
        ["task_type"] = "CAUSAL_LM",
        ["base_model_name_or_path"] = baseModel,
        ["r"] = s.Rank,
        ["lora_alpha"] = s.Alpha,
        ["lora_dropout"] = s.Dropout,
        ["target_modules"] = new JsonArray(s.TargetModules.Select(m => (JsonNode)JsonValue.Create(m)!).ToArray()),
        ["bias"] = "none",
        ["use_rslora"] = s.UseRslora,
        ["fan_in_fan_out"] = false,
        ["inference_mode"] = true,
        ["init_lora_weights"] = true,
        ["modules_to_save"] = null,
        ["rank_pattern"] = new JsonObject(),
        ["alpha_pattern"] = new JsonObject(),
    };

    /// <summary>The LoRA settings of an adapter folder's config; every problem at once, naming the file and field.</summary>
    public static LoraSettings ReadSettings(string folder)
    {
        var path = Path.Combine(folder, Config);
        if (!File.Exists(path)) throw new FileNotFoundException($"{folder}: not a PEFT adapter folder ({Config} is missing)");
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException("not a JSON object"); }
        catch (Exception e) when (e is JsonException or InvalidDataException) { throw new InvalidDataException($"{path}: not a valid adapter config ({e.Message})"); }
        var problems = new List<string>();
        string? Str(string k) => o[k] is JsonValue v && v.TryGetValue<string>(out var x) ? x : null;
        double? Num(string k) => o[k] is JsonValue v && v.TryGetValue<double>(out var x) ? x : null;
        if (Str("peft_type") is var pt && pt != "LORA") problems.Add($"peft_type is '{pt}', expected 'LORA'");
        var r = Num("r");
        if (r is not double rv || rv < 1 || rv != System.Math.Floor(rv)) problems.Add($"r must be an integer >= 1, got {o["r"]?.ToJsonString() ?? "nothing"}");
        var alpha = Num("lora_alpha");
        if (alpha is not double av || !(av > 0)) problems.Add($"lora_alpha must be a number > 0, got {o["lora_alpha"]?.ToJsonString() ?? "nothing"}");
        var dropout = Num("lora_dropout") ?? 0;
        bool rslora = o["use_rslora"] is JsonValue rs && rs.TryGetValue<bool>(out var b) && b;
        if (Str("bias") is { } bias && bias != "none") problems.Add($"bias is '{bias}'; only 'none' is supported");
        if (o["fan_in_fan_out"] is JsonValue f && f.TryGetValue<bool>(out var fan) && fan) problems.Add("fan_in_fan_out is true; only false (Linear layout) is supported");
        foreach (var k in new[] { "rank_pattern", "alpha_pattern" })
            if (o[k] is JsonObject p && p.Count > 0) problems.Add($"{k} is not empty; per-module ranks and alphas are not supported");
        if (o["modules_to_save"] is JsonArray ms && ms.Count > 0) problems.Add("modules_to_save is not empty; only adapters are supported");
        var targets = o["target_modules"] switch
        {
            JsonArray a => a.Select(x => x?.GetValue<string>() ?? "").ToList(),
            JsonValue v when v.TryGetValue<string>(out var one) => [one],
            _ => null,
        };
        if (targets is null || targets.Count == 0) problems.Add("target_modules must be a list of projection names");
        else foreach (var t in targets.Where(t => !LoraSettings.AllProjections.Contains(t)))
                problems.Add($"target_modules: '{t}' is not a projection of the decoder ({string.Join(", ", LoraSettings.AllProjections)})");
        if (problems.Count > 0) throw new InvalidDataException($"{path}: {string.Join("; ", problems)}");
        return new LoraSettings((int)r!.Value, alpha!.Value, targets!, dropout, rslora);
    }

    /// <summary>A PEFT adapter read from its folder and checked against a model, not yet attached: its settings
    /// and its tensors by the model's names (&lt;projection&gt;.lora_A.weight [r, in], ….lora_B.weight [out, r]), on the CPU.</summary>
    public sealed class Loaded(LoraSettings settings, Dictionary<string, Tensor> tensors, string folder) : IDisposable
    {
        public LoraSettings Settings => settings;
        public IReadOnlyDictionary<string, Tensor> Tensors => tensors;
        /// <summary>Where it was read from (or where the model's adapters were captured from).</summary>
        public string Folder => folder;
        public void Dispose() { foreach (var t in tensors.Values) t.Dispose(); }
    }

    /// <summary>
    /// Read the adapter of a PEFT folder and check it fits the model: its settings from adapter_config.json,
    /// its tensors from adapter_model.safetensors. Every unknown tensor, missing tensor, wrong shape and rank
    /// that disagrees with the config is reported at once, naming the file; a tensor with NaN or Inf is an error
    /// naming it. The model is not changed.
    /// </summary>
    public static Loaded Read(CausalLM model, string folder)
    {
        var settings = ReadSettings(folder);
        var path = Path.Combine(folder, Weights);
        if (!File.Exists(path)) throw new FileNotFoundException($"{folder}: {Weights} is missing");
        var tensors = SafeTensors.Read(path);
        var problems = new List<string>();
        var projections = model.Projections().ToDictionary(p => p.Name);
        int r = settings.Rank;
        var byInner = new Dictionary<string, Tensor>();
        foreach (var (name, t) in tensors)
        {
            var inner = name.StartsWith(Prefix) ? name[Prefix.Length..] : name;
            // PEFT names some files' tensors with the adapter name (….lora_A.default.weight)
            inner = inner.Replace(".lora_A.default.weight", ".lora_A.weight").Replace(".lora_B.default.weight", ".lora_B.weight");
            bool isA = inner.EndsWith(".lora_A.weight"), isB = inner.EndsWith(".lora_B.weight");
            var projection = isA || isB ? inner[..^".lora_A.weight".Length] : null;
            if (projection is null || !projections.TryGetValue(projection, out var p))
            {
                problems.Add($"tensor '{name}' is not an adapter of a projection of this model");
                continue;
            }
            if (!settings.TargetModules.Contains(p.Module)) problems.Add($"tensor '{name}' adapts {p.Module}, which is not in the config's target_modules");
            long[] expected = isA ? [r, p.Layer.InFeatures] : [p.Layer.OutFeatures, r];
            if (t.shape.Length == 2 && (isA ? t.shape[0] : t.shape[1]) != r && (isA ? t.shape[1] == p.Layer.InFeatures : t.shape[0] == p.Layer.OutFeatures))
                problems.Add($"tensor '{name}' has rank {(isA ? t.shape[0] : t.shape[1])}, the config says r = {r}");
            else if (!t.shape.SequenceEqual(expected))
                problems.Add($"tensor '{name}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", expected)}]");
            byInner[inner] = t;
        }
        foreach (var (name, module, _) in model.Projections().Where(p => settings.TargetModules.Contains(p.Module)))
            foreach (var part in new[] { "lora_A", "lora_B" })
                if (!byInner.ContainsKey($"{name}.{part}.weight")) problems.Add($"missing tensor '{Prefix}{name}.{part}.weight'");
        if (problems.Count > 0)
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw new InvalidDataException($"{path}: the adapter does not fit the model: {string.Join("; ", problems)}");
        }
        try { HfFolder.CheckFinite(tensors, path); }
        catch { foreach (var t in tensors.Values) t.Dispose(); throw; }
        return new Loaded(settings, byInner, folder);
    }

    /// <summary>Attach a read adapter to the model (replacing any it has): fresh adapters of its settings,
    /// then its tensors copied in (converted to the model's dtype and device).</summary>
    public static void Attach(CausalLM model, Loaded adapter, long seed = 0)
    {
        var projections = model.Projections().ToDictionary(p => p.Name);
        model.AttachLora(adapter.Settings, seed);
        using (no_grad())
            foreach (var (inner, t) in adapter.Tensors)
            {
                var layer = projections[inner[..^".lora_A.weight".Length]].Layer;
                (inner.EndsWith(".lora_A.weight") ? layer.LoraA! : layer.LoraB!).copy_(t);
            }
    }

    /// <summary>A copy (on the CPU) of the adapters the model holds now, to attach again later; null without adapters.</summary>
    public static Loaded? Capture(CausalLM model, string origin)
    {
        if (model.Lora is not { } settings) return null;
        using var _ = no_grad();
        var tensors = model.LoraParameters().ToDictionary(p => p.Name, p => p.Param.detach().to(CPU).clone().DetachFromDisposeScope());
        return new Loaded(settings, tensors, origin);
    }

    /// <summary>
    /// Attach the adapter of a PEFT folder to a model (replacing any it has): <see cref="Read"/>, then
    /// <see cref="Attach"/>. A malformed adapter is an error naming the file and every bad tensor.
    /// </summary>
    public static LoraSettings Apply(CausalLM model, string folder, long seed = 0)
    {
        using var adapter = Read(model, folder);
        Attach(model, adapter, seed);
        return adapter.Settings;
    }
}
