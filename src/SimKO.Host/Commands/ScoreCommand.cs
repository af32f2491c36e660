using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SimKO.Data.Json;
using Microsoft.FSharp.Core;
using SimKO.Cli;
using SimKO.Data.Tokenizers;
using SimKO.Host.Checkpoints;
using SimKO.Host.Model;
using SimKO.Host.Runtime;

namespace SimKO.Host.Commands;

/// <summary>
/// `simko score`: JSONL lines <c>{"ids": [...]}</c> or <c>{"text": "..."}</c> in, lines
/// <c>{"ids": [...], "logprobs": [log p(ids[t] | ids[:t]) for t ≥ 1]}</c> out (raw model, temperature 1,
/// float32). A malformed line is an error naming its line number and field.
/// </summary>
public static class ScoreCommand
{
    public static int Run(ScoreArgs.ScoreOptions o)
    {
        try
        {
            var device = DeviceSelection.Resolve(o.Device);
            var tokenizer = HfFolder.LoadTokenizer(o.Model);
            using var model = HfFolder.LoadModel(o.Model, device, TorchSharp.torch.ScalarType.Float32);
            if (Microsoft.FSharp.Core.FSharpOption<string>.get_IsSome(o.Adapter)) PeftAdapter.Apply(model, o.Adapter.Value);
            model.eval();
            var policy = new ModelPolicy(model);
            var output = OptionModule.ToObj(o.Output);
            using var reader = new StreamReader(o.Input, Encoding.UTF8);
            if (output is null)
            {
                var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false));
                Score(policy, tokenizer, reader, stdout, o.Input);
                stdout.Flush();
            }
            else
                AtomicFile.Write(output, stream =>
                {
                    using var w = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true);
                    Score(policy, tokenizer, reader, w, o.Input);
                });
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException or IOException or NotSupportedException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    /// <summary>Scores every non-blank line; returns the number written.</summary>
    public static int Score(IPolicy policy, ITokenizer tokenizer, TextReader input, TextWriter output, string source)
    {
        int written = 0;
        foreach (var (lineNo, obj) in JsonLines.Objects(input, source, "an object {\"ids\": [...]} or {\"text\": \"...\"}", m => new InvalidDataException(m)))
        {
            int[] ids;
            if (obj["ids"] is JsonArray arr)
            {
                ids = new int[arr.Count];
                for (int i = 0; i < arr.Count; i++)
                    ids[i] = arr[i] is JsonValue v && v.TryGetValue<int>(out var id) && id >= 0 && id < tokenizer.VocabSize ? id
                        : throw new InvalidDataException($"{source}:{lineNo}: field 'ids[{i}]' is not a token id in [0, {tokenizer.VocabSize})");
            }
            else if (obj["text"] is JsonValue tv && tv.TryGetValue<string>(out var text)) ids = tokenizer.Encode(text);
            else throw new InvalidDataException($"{source}:{lineNo}: field 'ids' (a list of token ids) or 'text' (a string) is required");
            if (ids.Length == 0) throw new InvalidDataException($"{source}:{lineNo}: the sequence is empty");
            var logps = SequenceScores.LogProbs(policy, ids);
            output.WriteLine(new JsonObject
            {
                ["ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()),
                ["logprobs"] = new JsonArray(logps.Select(x => (JsonNode)x).ToArray()),
            }.ToJsonString());
            written++;
        }
        return written;
    }
}
