using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using SimKO.Data.Json;
using SimKO.Data.Tokenizers;
using SimKO.Host.Checkpoints;

namespace SimKO.Host.Commands;

/// <summary>
/// `simko tokenize`: encodes JSONL lines <c>{"text": …}</c> with a tokenizer folder and writes
/// <c>{"text": …, "ids": [...]}</c> one a line. Blank lines are skipped; a malformed line is an
/// error naming its line number.
/// </summary>
public static class TokenizeCommand
{
    static readonly JsonSerializerOptions Compact = new() { WriteIndented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static int Run(string tokenizerFolder, string? inputPath, string? outputPath)
    {
        ITokenizer tokenizer;
        try { tokenizer = HfFolder.LoadTokenizer(tokenizerFolder); }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: cannot load the tokenizer in {tokenizerFolder}: {e.Message}");
            return 2;
        }
        var source = inputPath ?? "<stdin>";
        try
        {
            using var reader = inputPath is null ? Console.In : new StreamReader(inputPath, Encoding.UTF8);
            if (outputPath is null)
            {
                var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false)) { AutoFlush = false };
                Tokenize(tokenizer, reader, stdout, source);
                stdout.Flush();
            }
            else
                AtomicFile.Write(outputPath, stream =>
                {
                    using var w = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true);
                    Tokenize(tokenizer, reader, w, source);
                });
            return 0;
        }
        catch (InputException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    /// <summary>Encodes every non-blank line of <paramref name="input"/>; returns the number of lines written.</summary>
    public static int Tokenize(ITokenizer tokenizer, TextReader input, TextWriter output, string source)
    {
        var written = 0;
        foreach (var (lineNo, obj) in JsonLines.Objects(input, source, "a JSON object {\"text\": …}", m => new InputException(m)))
        {
            if (obj["text"] is not JsonValue tv || !tv.TryGetValue<string>(out var text))
                throw new InputException($"{source}:{lineNo}: field 'text' is missing or not a string");
            var ids = tokenizer.Encode(text);
            var arr = new JsonArray();
            foreach (var id in ids) arr.Add(id);
            output.WriteLine(new JsonObject { ["text"] = text, ["ids"] = arr }.ToJsonString(Compact));
            written++;
        }
        return written;
    }
}
