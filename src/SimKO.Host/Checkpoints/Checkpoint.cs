using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Checkpoints;

/// <summary>A checkpoint whose tensors do not match the model; the message lists every difference by name.</summary>
public sealed class CheckpointMismatchException(string message) : Exception(message);

/// <summary>
/// The tensors of an HF checkpoint as one name → file map: a single <c>model.safetensors</c>, or
/// shards listed by <c>model.safetensors.index.json</c>. Every file is opened and validated up front.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    /// <summary>The single-file weights name.</summary>
    public const string SingleFile = "model.safetensors";
    /// <summary>The sharded layout's index.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    private readonly List<SafeTensorsFile> files;
    private readonly Dictionary<string, SafeTensorsFile> byName;

    /// <summary>Where the checkpoint was read from (folder or file).</summary>
    public string Source { get; }

    /// <summary>Every tensor name.</summary>
    public IReadOnlyCollection<string> Names => byName.Keys;

    private Checkpoint(string source, List<SafeTensorsFile> files, Dictionary<string, SafeTensorsFile> byName)
    {
        Source = source;
        this.files = files;
        this.byName = byName;
    }

    /// <summary>
    /// Opens a folder (index if present, else <c>model.safetensors</c>) or a single file.
    /// Validates the index: plain file names, every listed tensor present in its file, no file
    /// holding tensors the index does not list, no tensor in two files.
    /// </summary>
    public static Checkpoint Open(string folderOrFile)
    {
        if (File.Exists(folderOrFile)) return OpenSingle(folderOrFile, folderOrFile);
        if (!Directory.Exists(folderOrFile))
            throw new DirectoryNotFoundException($"{folderOrFile}: no such checkpoint folder or file.");
        var index = Path.Combine(folderOrFile, IndexFile);
        if (File.Exists(index)) return OpenSharded(folderOrFile, index);
        var single = Path.Combine(folderOrFile, SingleFile);
        if (File.Exists(single)) return OpenSingle(folderOrFile, single);
        throw new FileNotFoundException($"{folderOrFile}: neither {SingleFile} nor {IndexFile} is there.");
    }

    static Checkpoint OpenSingle(string source, string path)
    {
        var f = SafeTensorsFile.Open(path);
        return new Checkpoint(source, [f], f.Entries.ToDictionary(e => e.Name, _ => f, StringComparer.Ordinal));
    }

    static Checkpoint OpenSharded(string folder, string index)
    {
        JsonObject map;
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(index)) as JsonObject;
            map = root?["weight_map"] as JsonObject ?? throw new SafeTensorsFormatException($"{index}: missing object 'weight_map'.");
        }
        catch (JsonException e) { throw new SafeTensorsFormatException($"{index}: not valid JSON ({e.Message})."); }

        var wanted = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, node) in map)
        {
            if (node is not JsonValue v || !v.TryGetValue<string>(out var file))
                throw new SafeTensorsFormatException($"{index}: weight_map['{name}'] must be a file name string.");
            if (file.Length == 0 || Path.GetFileName(file) != file || file is "." or "..")
                throw new SafeTensorsFormatException($"{index}: weight_map['{name}'] = '{file}' is not a plain file name in the folder.");
            wanted[name] = file;
        }
        var opened = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var file in wanted.Values.Distinct().OrderBy(f => f, StringComparer.Ordinal))
            {
                var path = Path.Combine(folder, file);
                if (!File.Exists(path)) throw new SafeTensorsFormatException($"{index}: shard '{file}' is listed but missing from {folder}.");
                opened[file] = SafeTensorsFile.Open(path);
            }
            var byName = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            foreach (var (name, file) in wanted)
            {
                if (!opened[file].Contains(name))
                    throw new SafeTensorsFormatException($"{index}: tensor '{name}' is listed in shard '{file}', which does not hold it.");
                byName[name] = opened[file];
            }
            foreach (var (file, st) in opened)
                foreach (var e in st.Entries)
                    if (!wanted.TryGetValue(e.Name, out var listed) || listed != file)
                        throw new SafeTensorsFormatException($"{Path.Combine(folder, file)}: holds tensor '{e.Name}', which {IndexFile} " +
                            (listed is null ? "does not list." : $"places in '{listed}'."));
            return new Checkpoint(folder, opened.Values.ToList(), byName);
        }
        catch
        {
            foreach (var f in opened.Values) f.Dispose();
            throw;
        }
    }

    /// <summary>Where <paramref name="name"/> lies, or null.</summary>
    public TensorEntry? Entry(string name) => byName.TryGetValue(name, out var f) ? f.Entry(name) : null;

    /// <summary>The file holding <paramref name="name"/>.</summary>
    public string FileOf(string name) => byName[name].Path;

    /// <summary>Reads one tensor (see <see cref="SafeTensorsFile.Read"/>).</summary>
    public Tensor Read(string name, Device? device = null, ScalarType? dtype = null) =>
        byName.TryGetValue(name, out var f) ? f.Read(name, device, dtype)
            : throw new KeyNotFoundException($"{Source}: no tensor named '{name}'.");

    /// <summary>
    /// Copies the checkpoint into <paramref name="model"/>'s parameters and buffers, converting
    /// dtype and device. First checks the whole match and throws one
    /// <see cref="CheckpointMismatchException"/> listing every missing, unexpected and mis-shaped
    /// tensor with expected and found shapes. Names for which <paramref name="ignorable"/> is true
    /// may be present without a counterpart (e.g. <c>lm_head.weight</c> of a tied model).
    /// </summary>
    public void LoadInto(nn.Module model, Func<string, bool>? ignorable = null)
    {
        var targets = model.state_dict();
        var missing = new List<string>();
        var misShaped = new List<string>();
        foreach (var (name, t) in targets)
        {
            var e = Entry(name);
            if (e is null) missing.Add($"{name} (expected [{string.Join(", ", t.shape)}])");
            else if (!e.Shape.SequenceEqual(t.shape))
                misShaped.Add($"{name}: expected [{string.Join(", ", t.shape)}], found {e.ShapeText} {e.DType} in {FileOf(name)}");
            else if (!IsLoadable(e.ScalarType, t.dtype))
                misShaped.Add($"{name}: expected a {t.dtype} tensor, found {e.DType} in {FileOf(name)}");
        }
        var unexpected = byName.Keys
            .Where(n => !targets.ContainsKey(n) && !(ignorable?.Invoke(n) ?? false))
            .OrderBy(n => n, StringComparer.Ordinal)
            .Select(n => $"{n} {Entry(n)!.ShapeText} in {FileOf(n)}")
            .ToList();
        if (missing.Count + misShaped.Count + unexpected.Count > 0)
        {
            var msg = new System.Text.StringBuilder($"{Source}: the checkpoint does not match the model.");
            void Section(string title, List<string> items)
            {
                if (items.Count == 0) return;
                msg.Append($"\n  {title} ({items.Count}):");
                foreach (var s in items.Take(25)) msg.Append("\n    ").Append(s);
                if (items.Count > 25) msg.Append($"\n    … and {items.Count - 25} more");
            }
            Section("missing from the checkpoint", missing);
            Section("wrong shape or dtype", misShaped);
            Section("not in the model", unexpected);
            throw new CheckpointMismatchException(msg.ToString());
        }
        using var noGrad = torch.no_grad();
        foreach (var (name, t) in targets)
        {
            using var scope = torch.NewDisposeScope();
            var src = Read(name);                                        // CPU, stored dtype
            t.copy_(src);                                                // converts dtype, moves device
        }
    }

    static bool IsLoadable(ScalarType from, ScalarType to) => from == to || (IsFloat(from) && IsFloat(to));

    static bool IsFloat(ScalarType t) => t is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;

    public void Dispose()
    {
        foreach (var f in files) f.Dispose();
    }
}
