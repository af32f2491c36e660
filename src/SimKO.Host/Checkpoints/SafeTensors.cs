using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace SimKO.Host.Checkpoints;

/// <summary>
/// The safetensors format, read and written by our own code: an 8-byte little-endian header length,
/// a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}, then the
/// raw little-endian tensor bytes. Everything is validated before any byte is trusted: header length
/// bounds, JSON, known dtypes, offsets inside the file, no overlaps, shape × dtype size = byte length.
/// </summary>
public static class SafeTensors
{
    const long MaxHeader = 100L * 1024 * 1024;

    static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2), ["BF16"] = (ScalarType.BFloat16, 2),
        ["F64"] = (ScalarType.Float64, 8), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1), ["BOOL"] = (ScalarType.Bool, 1),
    };

    /// <summary>A tensor's entry in a file's header.</summary>
    public sealed record Entry(string Name, string DType, long[] Shape, long Begin, long End);

    /// <summary>Read and validate the header of <paramref name="path"/>; throws naming the file and the problem.</summary>
    public static (List<Entry> Entries, long DataStart, Dictionary<string, string> Metadata) ReadHeader(string path)
    {
        using var f = File.OpenRead(path);
        long fileLength = f.Length;
        if (fileLength < 8) throw Bad(path, $"file has {fileLength} bytes, too short for the 8-byte header length");
        Span<byte> lenBytes = stackalloc byte[8];
        f.ReadExactly(lenBytes);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(lenBytes);
        if (headerLength <= 1 || headerLength > MaxHeader || headerLength > fileLength - 8)
            throw Bad(path, $"header length {headerLength} is out of bounds (file has {fileLength} bytes, limit {MaxHeader})");
        var header = new byte[headerLength];
        f.ReadExactly(header);
        JsonObject root;
        try { root = JsonNode.Parse(header) as JsonObject ?? throw new JsonException("the header is not a JSON object"); }
        catch (JsonException e) { throw Bad(path, $"header is not valid JSON: {e.Message}"); }
        long dataStart = 8 + headerLength, dataLength = fileLength - dataStart;
        var entries = new List<Entry>();
        var metadata = new Dictionary<string, string>();
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__")
            {
                if (node is JsonObject meta) foreach (var (k, v) in meta) metadata[k] = v?.ToString() ?? "";
                continue;
            }
            if (node is not JsonObject o) throw Bad(path, $"tensor '{name}': header entry is not an object");
            var dtype = o["dtype"] is JsonValue dv && dv.TryGetValue<string>(out var ds) ? ds : throw Bad(path, $"tensor '{name}': dtype is missing or not a string");
            if (!DTypes.TryGetValue(dtype, out var dt)) throw Bad(path, $"tensor '{name}': unknown dtype '{dtype}' (known: {string.Join(", ", DTypes.Keys)})");
            if (o["shape"] is not JsonArray shapeArr || shapeArr.Any(x => x is not JsonValue v || !v.TryGetValue<long>(out var d) || d < 0))
                throw Bad(path, $"tensor '{name}': shape must be a list of non-negative integers");
            var shape = shapeArr.Select(x => x!.GetValue<long>()).ToArray();
            if (o["data_offsets"] is not JsonArray offs || offs.Count != 2) throw Bad(path, $"tensor '{name}': data_offsets must be [begin, end]");
            if (offs[0] is not JsonValue bv || !bv.TryGetValue<long>(out var begin) || offs[1] is not JsonValue ev || !ev.TryGetValue<long>(out var end))
                throw Bad(path, $"tensor '{name}': data_offsets must be two integers [begin, end], got {offs.ToJsonString()}");
            if (begin < 0 || end < begin || end > dataLength)
                throw Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] are outside the data section ({dataLength} bytes)");
            long expected;
            try { expected = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * dt.Size); }
            catch (OverflowException) { throw Bad(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] × {dtype} overflows a 64-bit byte count"); }
            if (end - begin != expected)
                throw Bad(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] × {dtype} needs {expected} bytes, data_offsets give {end - begin}");
            entries.Add(new Entry(name, dtype, shape, begin, end));
        }
        var sorted = entries.OrderBy(e => e.Begin).ToList();
        for (int i = 1; i < sorted.Count; i++)
            if (sorted[i].Begin < sorted[i - 1].End)
                throw Bad(path, $"tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap ([{sorted[i - 1].Begin}, {sorted[i - 1].End}) and [{sorted[i].Begin}, {sorted[i].End}))");
        return (entries, dataStart, metadata);
    }

    /// <summary>Bytes moved per slice: a span over a tensor's memory is limited to 2 GiB, and large
    /// tensors (a 7B model's fp32 embedding is 2.18 GB) are read and written in slices of this size.</summary>
    public const long SliceBytes = 64L * 1024 * 1024;

    /// <summary>Element size in bytes of a safetensors dtype code.</summary>
    public static int ElementSize(string dtype) => DTypes[dtype].Size;

    /// <summary>The torch dtype of a safetensors dtype code.</summary>
    public static ScalarType TypeOf(string dtype) => DTypes[dtype].Type;

    /// <summary>The safetensors dtype code of a torch dtype.</summary>
    public static string CodeOf(ScalarType type) =>
        DTypes.FirstOrDefault(d => d.Value.Type == type).Key ?? throw new ArgumentException($"dtype {type} cannot be stored in safetensors here (known: {string.Join(", ", DTypes.Keys)})");

    /// <summary>Read every tensor of a file (CPU, as stored), validated.</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        var (entries, dataStart, _) = ReadHeader(path);
        var result = new Dictionary<string, Tensor>();
        using var f = File.OpenRead(path);
        foreach (var e in entries)
        {
            var t = empty(e.Shape, DTypes[e.DType].Type);
            ReadInto(f, path, dataStart, e, t);
            result[e.Name] = t.DetachFromDisposeScope();
        }
        return result;
    }

    /// <summary>
    /// Read entry <paramref name="e"/> of an open file into <paramref name="target"/> (same number of
    /// elements, any dtype and device): slice by slice through a CPU staging tensor of the file's
    /// dtype, converted and copied into the target, so no more than <see cref="SliceBytes"/> of the
    /// tensor is ever in host memory twice and no span exceeds 2 GiB.
    /// </summary>
    public static void ReadInto(Stream f, string path, long dataStart, Entry e, Tensor target)
    {
        var (type, size) = DTypes[e.DType];
        long count = e.Shape.Aggregate(1L, (a, b) => a * b);
        if (target.numel() != count)
            throw Bad(path, $"tensor '{e.Name}': {count} elements in the file, the target has {target.numel()}");
        if (!target.is_contiguous()) throw new ArgumentException($"tensor '{e.Name}': the target must be contiguous");
        using var _ = no_grad();
        using var flat = target.view(-1);
        bool direct = target.dtype == type && target.device_type == TorchSharp.DeviceType.CPU;
        long perSlice = System.Math.Max(1, SliceBytes / size);
        using var staging = direct ? null : empty(System.Math.Min(perSlice, System.Math.Max(count, 1)), type);
        f.Seek(dataStart + e.Begin, SeekOrigin.Begin);
        for (long start = 0; start < count; start += perSlice)
        {
            long len = System.Math.Min(perSlice, count - start);
            using var dst = flat.narrow(0, start, len);
            if (direct) f.ReadExactly(dst.bytes);
            else
            {
                using var buf = staging!.narrow(0, 0, len);
                f.ReadExactly(buf.bytes);
                dst.copy_(buf);
            }
        }
    }

    /// <summary>
    /// Write tensors (any device; converted to <paramref name="dtype"/> when given) to a stream in
    /// safetensors layout, slice by slice: each slice is moved to the CPU and converted on its own,
    /// so no whole-tensor copy and no span over 2 GiB is ever made.
    /// </summary>
    public static void Write(Stream stream, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null, ScalarType? dtype = null)
    {
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var m = new JsonObject();
            foreach (var (k, v) in metadata) m[k] = v;
            header["__metadata__"] = m;
        }
        long offset = 0;
        foreach (var n in names)
        {
            var t = tensors[n];
            var code = CodeOf(dtype ?? t.dtype);
            long size = t.numel() * DTypes[code].Size;
            header[n] = new JsonObject { ["dtype"] = code, ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode?)d).ToArray()), ["data_offsets"] = new JsonArray(offset, offset + size) };
            offset += size;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - headerBytes.Length % 8) % 8;                    // keep the data 8-byte aligned
        var padded = headerBytes.Concat(Enumerable.Repeat((byte)' ', pad)).ToArray();
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, padded.Length);
        stream.Write(len);
        stream.Write(padded);
        foreach (var n in names) WriteData(stream, tensors[n], dtype ?? tensors[n].dtype);
    }

    /// <summary>The raw bytes of one tensor in <paramref name="dtype"/>, slice by slice.</summary>
    static void WriteData(Stream stream, Tensor t, ScalarType dtype)
    {
        using var _ = no_grad();
        using var c = t.detach().contiguous();
        using var flat = c.view(-1);
        long count = flat.numel(), perSlice = System.Math.Max(1, SliceBytes / DTypes[CodeOf(dtype)].Size);
        for (long start = 0; start < count; start += perSlice)
        {
            using var slice = flat.narrow(0, start, System.Math.Min(perSlice, count - start));
            bool asIs = slice.dtype == dtype && slice.device_type == TorchSharp.DeviceType.CPU;
            using var host = asIs ? null : slice.to(dtype, CPU);
            stream.Write((host ?? slice).bytes);
        }
    }

    /// <summary>Write a file atomically (temp + rename).</summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null, ScalarType? dtype = null) =>
        AtomicFile.Write(path, s => Write(s, tensors, metadata, dtype));

    static InvalidDataException Bad(string path, string what) => new($"{path}: invalid safetensors file: {what}");
}
