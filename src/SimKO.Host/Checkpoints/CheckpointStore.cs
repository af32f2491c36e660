using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SimKO.Host.Checkpoints;

/// <summary>
/// Checkpoints as folders <c>step-NNNNNNNN/</c> under one directory. A checkpoint is written into a
/// temporary sibling folder, every file is flushed, a <c>manifest.json</c> with the SHA-256 and
/// size of every file is written last, and the folder is renamed into place: a run killed at any
/// moment leaves either a complete checkpoint or an ignored partial folder. Loading verifies every
/// checksum first; a damaged checkpoint is named and never loaded, and resuming falls back to the
/// newest intact one.
/// </summary>
public sealed class CheckpointStore(string directory)
{
    public const string Manifest = "manifest.json";
    const string Prefix = "step-";

    public string Directory { get; } = directory;

    public static string NameOf(long step) => $"{Prefix}{step:D8}";

    /// <summary>Write a checkpoint for <paramref name="step"/>; each entry writes one file.</summary>
    public string Save(long step, IReadOnlyList<(string File, Action<Stream> Write)> files)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var final = Path.Combine(Directory, NameOf(step));
        var partial = Path.Combine(Directory, $".{NameOf(step)}.partial-{Environment.ProcessId}");
        if (System.IO.Directory.Exists(partial)) System.IO.Directory.Delete(partial, true);
        System.IO.Directory.CreateDirectory(partial);
        var manifest = new JsonObject { ["step"] = step, ["format"] = 1 };
        var entries = new JsonObject();
        foreach (var (file, write) in files)
        {
            var path = Path.Combine(partial, file);
            using (var s = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
            {
                write(s);
                s.Flush(flushToDisk: true);
            }
            entries[file] = new JsonObject { ["sha256"] = Sha256(path), ["bytes"] = new FileInfo(path).Length };
        }
        manifest["files"] = entries;
        using (var s = new FileStream(Path.Combine(partial, Manifest), FileMode.CreateNew, FileAccess.Write))
        {
            JsonSerializer.Serialize(s, manifest, new JsonSerializerOptions { WriteIndented = true });
            s.Flush(flushToDisk: true);
        }
        if (System.IO.Directory.Exists(final))
        {
            var old = final + $".replaced-{Environment.ProcessId}";
            System.IO.Directory.Move(final, old);
            System.IO.Directory.Move(partial, final);
            System.IO.Directory.Delete(old, true);
        }
        else System.IO.Directory.Move(partial, final);
        return final;
    }

    /// <summary>Complete checkpoints (those with a manifest), oldest first, as (step, folder).</summary>
    public IReadOnlyList<(long Step, string Path)> List() =>
        Folders().Where(d => File.Exists(System.IO.Path.Combine(d.Path, Manifest))).ToList();

    /// <summary>Every step-N folder, with or without a manifest, oldest first.</summary>
    IReadOnlyList<(long Step, string Path)> Folders()
    {
        if (!System.IO.Directory.Exists(Directory)) return [];
        return System.IO.Directory.GetDirectories(Directory, Prefix + "*")
            .Select(d => (Name: System.IO.Path.GetFileName(d), Path: d))
            .Where(d => long.TryParse(d.Name.AsSpan(Prefix.Length), out _))
            .Select(d => (long.Parse(d.Name.AsSpan(Prefix.Length)), d.Path))
            .OrderBy(d => d.Item1).ToList();
    }

    /// <summary>The newest checkpoint that verifies, and every newer one that did not (each with the
    /// reason, newest first; a step folder without its manifest.json is named too, never skipped
    /// silently); Path is null when none is intact.</summary>
    public (string? Path, IReadOnlyList<string> Damaged) LatestIntact()
    {
        var damaged = new List<string>();
        foreach (var (_, path) in Folders().Reverse())
        {
            if (!File.Exists(System.IO.Path.Combine(path, Manifest)))
            {
                damaged.Add($"incomplete checkpoint: {System.IO.Path.Combine(path, Manifest)} is missing (a checkpoint without its manifest cannot be verified)");
                continue;
            }
            try
            {
                Verify(path);
                return (path, damaged);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                damaged.Add(e.Message);
            }
        }
        return (null, damaged);
    }

    /// <summary>Check every file of a checkpoint against its manifest; throws naming the damaged file.</summary>
    public static void Verify(string checkpoint)
    {
        var manifestPath = Path.Combine(checkpoint, Manifest);
        JsonObject manifest;
        try { manifest = JsonNode.Parse(File.ReadAllText(manifestPath)) as JsonObject ?? throw new InvalidDataException("not an object"); }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        { throw new InvalidDataException($"damaged checkpoint: {manifestPath} is not a valid manifest ({e.Message})"); }
        if (manifest["files"] is not JsonObject files) throw new InvalidDataException($"damaged checkpoint: {manifestPath} lists no files");
        foreach (var (file, node) in files)
        {
            var path = Path.Combine(checkpoint, file);
            if (!File.Exists(path)) throw new InvalidDataException($"damaged checkpoint: {path} is missing");
            var expected = node?["sha256"]?.GetValue<string>();
            var bytes = node?["bytes"]?.GetValue<long>();
            if (bytes is long n && new FileInfo(path).Length != n)
                throw new InvalidDataException($"damaged checkpoint: {path} has {new FileInfo(path).Length} bytes, the manifest says {n}");
            var actual = Sha256(path);
            if (actual != expected)
                throw new InvalidDataException($"damaged checkpoint: {path} has SHA-256 {actual}, the manifest says {expected}");
        }
    }

    /// <summary>Remove all but the newest <paramref name="keep"/> complete checkpoints, and stale partial folders.</summary>
    public void Prune(int keep)
    {
        var all = List();
        foreach (var (_, path) in all.Take(System.Math.Max(0, all.Count - keep))) System.IO.Directory.Delete(path, true);
        if (!System.IO.Directory.Exists(Directory)) return;
        foreach (var d in System.IO.Directory.GetDirectories(Directory, $".{Prefix}*.partial-*"))
            if (!d.EndsWith($".partial-{Environment.ProcessId}")) System.IO.Directory.Delete(d, true);
    }

    /// <summary>What trainer.json of a checkpoint says, read field by field: a missing or mistyped field is
    /// an error naming the file and the field (its checksum may match: the file was written wrong).</summary>
    /// <summary>A checkpoint's trainer state; <c>Config</c> is the run configuration it was written with (absent in old checkpoints).</summary>
    public sealed record TrainerState(long StepsDone, int Seed, int SkippedUpdates, JsonObject? Config)
    {
        /// <summary>The ranks of the run that wrote it, and whether its optimizer was sharded (absent in older checkpoints).</summary>
        public int? WorldSize { get; init; }
        public bool? ShardOptimizer { get; init; }
    }

    public static TrainerState ReadTrainerState(string path)
    {
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException("not a JSON object"); }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        { throw new InvalidDataException($"{path}: not a valid trainer state ({e.Message})"); }
        long Field(string name, long min, long max, long? dflt = null)
        {
            if (o[name] is null && dflt is long d) return d;
            if (o[name] is JsonValue v && v.TryGetValue<long>(out var x) && x >= min && x <= max) return x;
            throw new InvalidDataException($"{path}: field '{name}' is {(o[name] is null ? "missing" : o[name]!.ToJsonString())}; expected an integer in [{min}, {max}]");
        }
        return new TrainerState(Field("steps_done", 0, long.MaxValue), (int)Field("seed", int.MinValue, int.MaxValue),
            (int)Field("skipped_updates", 0, int.MaxValue, 0),
            o["config"] switch
            {
                null => null,
                JsonObject c => c,
                var other => throw new InvalidDataException($"{path}: field 'config' is {other.ToJsonString()}; expected a JSON object (the run configuration)"),
            })
        {
            WorldSize = o["world_size"] is null ? null : (int)Field("world_size", 1, int.MaxValue),
            ShardOptimizer = o["shard_optimizer"] switch
            {
                null => null,
                JsonValue v when v.TryGetValue<bool>(out var b) => b,
                var other => throw new InvalidDataException($"{path}: field 'shard_optimizer' is {other.ToJsonString()}; expected true or false"),
            },
        };
    }

    static string Sha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }
}
