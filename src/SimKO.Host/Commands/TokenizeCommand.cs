using System.Text.Encodings.Web;
using System.Text.Json;
using SimKO.Cli;
using SimKO.Data.Tokenizers;

namespace SimKO.Host.CommandHandlers;

/// <summary>
/// <c>simko tokenize</c>: reads <c>{"text": …}</c> JSONL lines (file or standard input) and writes
/// <c>{"text": …, "ids": [...]}</c> lines (file or standard output) with a folder's tokenizer.
/// </summary>
public static class TokenizeCommand
{
    public static int Run(TokenizeArgs.TokenizeOptions o)
    {
        ITokenizer tok;
        try { tok = Tokenizers.FromFolder(o.Tokenizer); }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            Console.Error.WriteLine($"tokenize: {e.Message}");
            return 1;
        }
        string source = o.Input is { Value: var inPath } ? inPath : "<stdin>";
        using var reader = o.Input is { Value: var ip } ? new StreamReader(ip) : new StreamReader(Console.OpenStandardInput());
        string? outPath = o.Output?.Value;
        string? tmp = outPath is null ? null : outPath + ".tmp";
        var writer = tmp is null ? new StreamWriter(Console.OpenStandardOutput()) : new StreamWriter(tmp);
        var json = new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        int lineNo = 0, count = 0;
        try
        {
            using (writer)
            {
                string? line;
                while ((line = reader.ReadLine()) is not null)
                {
                    lineNo++;
                    if (line.Trim().Length == 0) continue;
                    string text;
                    try
                    {
                        using var doc = JsonDocument.Parse(line);
                        if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                            throw new InvalidDataException("expected an object with a string field \"text\"");
                        text = t.GetString()!;
                    }
                    catch (Exception e) when (e is JsonException or InvalidDataException)
                    {
                        Console.Error.WriteLine($"tokenize: {source}:{lineNo}: {e.Message}");
                        return 1;
                    }
                    var ids = tok.Encode(text);
                    writer.Write(JsonSerializer.Serialize(new Dictionary<string, object> { ["text"] = text, ["ids"] = ids }, json));
                    writer.Write('\n');
                    count++;
                }
            }
            if (tmp is not null) File.Move(tmp, outPath!, overwrite: true);
            Console.Error.WriteLine($"tokenize: {count} lines encoded with {o.Tokenizer}.");
            return 0;
        }
        finally
        {
            if (tmp is not null && File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
