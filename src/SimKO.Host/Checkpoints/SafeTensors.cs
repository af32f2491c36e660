using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Checkpoints;

/// <summary>A safetensors file (or index) that is malformed; the message names the file and the tensor.</summary>
public sealed class SafeTensorsFormatException(string message) : Exception(message);

/// <summary>Where one tensor lies in a safetensors file.</summary>
/// <param name="Name">tensor name</param>
/// <param name="DType">the file's dtype string (F32, BF16, …)</param>
/// <param name="ScalarType">the matching torch dtype</param>
/// <param name="Shape">the shape</param>
/// <param name="Begin">first byte, relative to the data section</param>
/// <param name="End">one past the last byte, relative to the data section</param>
public sealed record TensorEntry(string Name, string DType, ScalarType ScalarType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// The safetensors format, read and written by our own code: 8 bytes little-endian header
/// length N, N bytes of JSON header <c>{name: {dtype, shape, data_offsets: [begin, end]},
/// "__metadata__": {str: str}}</c>, then the data section. Everything is validated before any
/// byte of data is trusted: header length bounds, JSON, known dtypes, offsets inside the data
/// section, no overlaps and no gaps, and <c>prod(shape) × dtype size = end − begin</c>.
/// </summary>
public static class SafeTensors
{
    /// <summary>The largest header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    static readonly (string Name, ScalarType Type, int Size)[] DTypes =
    [
        ("F64", ScalarType.Float64, 8), ("F32", ScalarType.Float32, 4), ("F16", ScalarType.Float16, 2),
        ("BF16", ScalarType.BFloat16, 2), ("I64", ScalarType.Int64, 8), ("I32", ScalarType.Int32, 4),
        ("I16", ScalarType.Int16, 2), ("I8", ScalarType.Int8, 1), ("U8", ScalarType.Byte, 1), ("BOOL", ScalarType.Bool, 1),
    ];

    /// <summary>The dtype strings this reader knows.</summary>
    public static string KnownDTypes => string.Join(", ", DTypes.Select(d => d.Name));

    /// <summary>Size in bytes of one element of a safetensors dtype, or null if unknown.</summary>
    public static int? ElementSize(string dtype) => DTypes.FirstOrDefault(d => d.Name == dtype) is var d && d.Name is not null ? d.Size : null;

    /// <summary>The safetensors dtype string of a torch dtype.</summary>
    public static string DTypeName(ScalarType t) =>
        DTypes.FirstOrDefault(d => d.Type == t) is var d && d.Name is not null
            ? d.Name
            : throw new ArgumentException($"dtype {t} cannot be stored in safetensors by this writer (supported: {KnownDTypes}).");

    static int ElementSize(ScalarType t) => DTypes.First(d => d.Type == t).Size;

    // ------------------------------------------------------------------ reading

    /// <summary>Reads every tensor of a file onto <paramref name="device"/> (dtype as stored unless <paramref name="dtype"/> is given).</summary>
    public static Dictionary<string, Tensor> Load(string path, Device? device = null, ScalarType? dtype = null)
    {
        using var f = SafeTensorsFile.Open(path);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var e in f.Entries) result[e.Name] = f.Read(e.Name, device, dtype);
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>The metadata (<c>__metadata__</c>) of a file.</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        using var f = SafeTensorsFile.Open(path);
        return f.Metadata;
    }

    // ------------------------------------------------------------------ writing

    /// <summary>
    /// Writes tensors (any device, contiguous or not) to <paramref name="path"/> in name order.
    /// The file is written next to its destination under a temporary name and renamed into place,
    /// so a reader never sees a half-written file. Use it for any named tensor dictionary
    /// (optimizer state included); <see cref="Load"/> reads it back.
    /// </summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var items = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (kv.Key, kv.Value)).ToList();
        var tmp = TempPathFor(path);
        try
        {
            WriteTo(tmp, items, null, metadata);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>A temporary file name in the destination's folder (same file system, so the rename is atomic).</summary>
    internal static string TempPathFor(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        return System.IO.Path.Combine(System.IO.Path.GetDirectoryName(full)!, "." + System.IO.Path.GetFileName(full) + ".tmp-" + Guid.NewGuid().ToString("N")[..8]);
    }

    /// <summary>Bytes a tensor takes in a file, after an optional cast of floating tensors.</summary>
    internal static long StoredBytes(Tensor t, ScalarType? castFloatsTo) => t.numel() * ElementSize(StoredType(t.dtype, castFloatsTo));

    static ScalarType StoredType(ScalarType t, ScalarType? castFloatsTo) =>
        castFloatsTo is { } c && t is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64 ? c : t;

    /// <summary>
    /// Writes the file directly (no rename). Data is laid out by element size (largest first),
    /// then name, as the reference writer does, so every tensor starts aligned to its element size.
    /// Floating tensors are cast to <paramref name="castFloatsTo"/> when given. Each tensor is
    /// copied to the CPU on its own.
    /// </summary>
    internal static void WriteTo(string path, IReadOnlyList<(string Name, Tensor Tensor)> given, ScalarType? castFloatsTo, IReadOnlyDictionary<string, string>? metadata)
    {
        var items = given
            .OrderByDescending(i => ElementSize(StoredType(i.Tensor.dtype, castFloatsTo)))
            .ThenBy(i => i.Name, StringComparer.Ordinal)
            .ToList();
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata.ToDictionary(kv => kv.Key, kv => kv.Value);
        long offset = 0;
        foreach (var (n, t) in items)
        {
            if (n == "__metadata__") throw new ArgumentException($"{path}: a tensor may not be named __metadata__.");
            if (header.ContainsKey(n)) throw new ArgumentException($"{path}: tensor '{n}' given twice.");
            long bytes = StoredBytes(t, castFloatsTo);
            header[n] = new Dictionary<string, object>
            {
                ["dtype"] = DTypeName(StoredType(t.dtype, castFloatsTo)),
                ["shape"] = t.shape,
                ["data_offsets"] = new[] { offset, offset + bytes },
            };
            offset += bytes;
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        int pad = (8 - json.Length % 8) % 8;                       // data section starts 8-byte aligned
        var headerBytes = new byte[json.Length + pad];
        json.CopyTo(headerBytes, 0);
        for (int i = json.Length; i < headerBytes.Length; i++) headerBytes[i] = (byte)' ';

        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)headerBytes.Length);
        fs.Write(len);
        fs.Write(headerBytes);
        foreach (var (_, t) in items)
        {
            using var scope = torch.NewDisposeScope();
            var cpu = t.detach().to(StoredType(t.dtype, castFloatsTo), torch.CPU).contiguous();
            ForEachChunk(cpu, (span, _) => fs.Write(span));
        }
        fs.Flush(flushToDisk: true);
    }

    /// <summary>
    /// Largest span handed to file I/O at once. A span is limited to 2 GiB, and one embedding
    /// table of a 7B model in float32 is larger, so big tensors go through in chunks.
    /// Settable so tests can exercise the chunked path on small tensors.
    /// </summary>
    public static long IoChunkBytes { get; set; } = 1L << 30;

    internal delegate void ChunkAction(Span<byte> bytes, long byteOffset);

    /// <summary>Calls <paramref name="action"/> on consecutive byte ranges of a contiguous CPU tensor.</summary>
    internal static void ForEachChunk(Tensor cpuContiguous, ChunkAction action)
    {
        long n = cpuContiguous.numel();
        if (n == 0) return;
        long elem = cpuContiguous.ElementSize;
        long perChunk = System.Math.Max(1, IoChunkBytes / elem);
        if (n <= perChunk)
        {
            action(cpuContiguous.bytes, 0);
            return;
        }
        using var flat = cpuContiguous.reshape(-1);                           // [numel], a view
        for (long start = 0; start < n; start += perChunk)
        {
            using var part = flat.narrow(0, start, System.Math.Min(perChunk, n - start));
            action(part.bytes, start * elem);
        }
    }

    // ------------------------------------------------------------------ validation

    /// <summary>
    /// Parses and validates a header; <paramref name="dataLength"/> is the size of the data
    /// section. Throws <see cref="SafeTensorsFormatException"/> naming <paramref name="path"/>.
    /// </summary>
    internal static (List<TensorEntry> Entries, Dictionary<string, string> Metadata) ParseHeader(string path, ReadOnlySpan<byte> json, long dataLength)
    {
        var entries = new List<TensorEntry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new SafeTensorsFormatException($"{path}: the header is not valid JSON ({e.Message}).");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new SafeTensorsFormatException($"{path}: the header must be a JSON object; found {doc.RootElement.ValueKind}.");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(prop.Name))
                    throw new SafeTensorsFormatException($"{path}: tensor '{prop.Name}' appears twice in the header.");
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                        throw new SafeTensorsFormatException($"{path}: __metadata__ must be an object of strings.");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                            throw new SafeTensorsFormatException($"{path}: __metadata__ value '{m.Name}' must be a string; found {m.Value.ValueKind}.");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                entries.Add(ParseEntry(path, prop.Name, prop.Value, dataLength));
            }
        }
        // Offsets: sorted, they must tile the data section exactly (no overlap, no gap, no tail).
        var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        long cursor = 0;
        TensorEntry? prev = null;
        foreach (var e in sorted)
        {
            if (e.Begin < cursor)
                throw new SafeTensorsFormatException($"{path}: tensor '{e.Name}' (bytes {e.Begin}..{e.End}) overlaps tensor '{prev!.Name}' (bytes {prev.Begin}..{prev.End}).");
            if (e.Begin > cursor)
                throw new SafeTensorsFormatException($"{path}: bytes {cursor}..{e.Begin} of the data section belong to no tensor (before '{e.Name}').");
            cursor = e.End;
            prev = e;
        }
        if (cursor != dataLength)
            throw new SafeTensorsFormatException($"{path}: the tensors cover {cursor} bytes but the data section has {dataLength} (file truncated or has trailing bytes).");
        return (entries, metadata);
    }

    static TensorEntry ParseEntry(string path, string name, JsonElement v, long dataLength)
    {
        string where = $"{path}: tensor '{name}'";
        if (v.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsFormatException($"{where}: header entry must be an object; found {v.ValueKind}.");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new SafeTensorsFormatException($"{where}: missing string field 'dtype'.");
        string dtype = dt.GetString()!;
        var known = DTypes.FirstOrDefault(d => d.Name == dtype);
        if (known.Name is null)
            throw new SafeTensorsFormatException($"{where}: unknown or unsupported dtype '{dtype}' (supported: {KnownDTypes}).");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new SafeTensorsFormatException($"{where}: missing array field 'shape'.");
        var shape = new long[sh.GetArrayLength()];
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var x) || x < 0)
                throw new SafeTensorsFormatException($"{where}: shape entries must be non-negative integers; found {sh.GetRawText()}.");
            shape[i++] = x;
        }
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new SafeTensorsFormatException($"{where}: 'data_offsets' must be [begin, end].");
        long begin = 0, end = 0;
        int j = 0;
        foreach (var o in off.EnumerateArray())
        {
            if (o.ValueKind != JsonValueKind.Number || !o.TryGetInt64(out var x) || x < 0)
                throw new SafeTensorsFormatException($"{where}: data_offsets must be non-negative integers; found {off.GetRawText()}.");
            if (j++ == 0) begin = x; else end = x;
        }
        if (end < begin)
            throw new SafeTensorsFormatException($"{where}: data_offsets [{begin}, {end}] end before they begin.");
        if (end > dataLength)
            throw new SafeTensorsFormatException($"{where}: data_offsets [{begin}, {end}] run past the end of the data section ({dataLength} bytes; file truncated?).");
        long expected;
        try
        {
            expected = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * known.Size);
        }
        catch (OverflowException)
        {
            throw new SafeTensorsFormatException($"{where}: shape [{string.Join(", ", shape)}] is absurdly large.");
        }
        if (expected != end - begin)
            throw new SafeTensorsFormatException($"{where}: shape [{string.Join(", ", shape)}] × {dtype} ({known.Size} bytes) needs {expected} bytes but data_offsets [{begin}, {end}] hold {end - begin}.");
        return new TensorEntry(name, dtype, known.Type, shape, begin, end);
    }
}

/// <summary>
/// An open, validated safetensors file. Tensors are read one at a time, straight from the file
/// into a CPU tensor's memory, then converted/moved as asked.
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    private readonly SafeFileHandle handle;
    private readonly Dictionary<string, TensorEntry> byName;

    /// <summary>The file's path.</summary>
    public string Path { get; }
    /// <summary>The tensors, in header order.</summary>
    public IReadOnlyList<TensorEntry> Entries { get; }
    /// <summary>The <c>__metadata__</c> strings.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Offset of the data section in the file (8 + header length).</summary>
    public long DataStart { get; }

    private SafeTensorsFile(string path, SafeFileHandle handle, List<TensorEntry> entries, Dictionary<string, string> metadata, long dataStart)
    {
        Path = path;
        this.handle = handle;
        Entries = entries;
        Metadata = metadata;
        DataStart = dataStart;
        byName = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    /// <summary>Opens and validates <paramref name="path"/>; throws <see cref="SafeTensorsFormatException"/> on any defect.</summary>
    public static SafeTensorsFile Open(string path)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors I/O assumes a little-endian machine.");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: safetensors file not found.", path);
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            long fileLength = RandomAccess.GetLength(handle);
            if (fileLength < 8)
                throw new SafeTensorsFormatException($"{path}: {fileLength} bytes is too short for a safetensors file (needs at least the 8-byte header length).");
            Span<byte> lenBytes = stackalloc byte[8];
            ReadExactly(handle, lenBytes, 0, path);
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
            if (n > (ulong)SafeTensors.MaxHeaderBytes)
                throw new SafeTensorsFormatException($"{path}: header length {n} exceeds the {SafeTensors.MaxHeaderBytes}-byte limit (corrupt file?).");
            if ((long)n > fileLength - 8)
                throw new SafeTensorsFormatException($"{path}: header length {n} runs past the end of the file ({fileLength} bytes; truncated?).");
            if (n < 2)
                throw new SafeTensorsFormatException($"{path}: header length {n} is too short for a JSON object.");
            var json = new byte[n];
            ReadExactly(handle, json, 8, path);
            if (json[0] != (byte)'{')
                throw new SafeTensorsFormatException($"{path}: the header must start with '{{'.");
            long dataStart = 8 + (long)n;
            var (entries, metadata) = SafeTensors.ParseHeader(path, json, fileLength - dataStart);
            return new SafeTensorsFile(path, handle, entries, metadata, dataStart);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>True if the file holds <paramref name="name"/>.</summary>
    public bool Contains(string name) => byName.ContainsKey(name);

    /// <summary>The entry of <paramref name="name"/>; throws naming the file if absent.</summary>
    public TensorEntry Entry(string name) =>
        byName.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'.");

    /// <summary>
    /// Reads one tensor: into CPU memory in the stored dtype, then converted to
    /// <paramref name="dtype"/> and moved to <paramref name="device"/> when given.
    /// </summary>
    public Tensor Read(string name, Device? device = null, ScalarType? dtype = null)
    {
        var e = Entry(name);
        var t = torch.empty(e.Shape, e.ScalarType, torch.CPU);
        try
        {
            SafeTensors.ForEachChunk(t, (span, off) => ReadExactly(handle, span, DataStart + e.Begin + off, Path));
        }
        catch
        {
            t.Dispose();
            throw;
        }
        bool convert = dtype is { } d && d != e.ScalarType;
        bool move = device is not null && device.type != DeviceType.CPU;
        if (!convert && !move) return t;
        using (t)
            return t.to(dtype ?? e.ScalarType, device ?? torch.CPU);
    }

    /// <summary>Reads the stored bytes of one tensor into <paramref name="destination"/> (a CPU, contiguous tensor of the stored dtype and shape).</summary>
    public void ReadInto(string name, Tensor destination)
    {
        var e = Entry(name);
        if (destination.dtype != e.ScalarType || !destination.shape.SequenceEqual(e.Shape) || destination.device.type != DeviceType.CPU || !destination.is_contiguous())
            throw new ArgumentException($"{Path}: tensor '{name}' is {e.DType} {e.ShapeText}; the destination is {destination.dtype} [{string.Join(", ", destination.shape)}] on {destination.device}.");
        SafeTensors.ForEachChunk(destination, (span, off) => ReadExactly(handle, span, DataStart + e.Begin + off, Path));
    }

    static void ReadExactly(SafeFileHandle h, Span<byte> buffer, long offset, string path)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int got = RandomAccess.Read(h, buffer[done..], offset + done);
            if (got <= 0) throw new SafeTensorsFormatException($"{path}: unexpected end of file at byte {offset + done}.");
            done += got;
        }
    }

    public void Dispose() => handle.Dispose();
}
