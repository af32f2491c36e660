using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Host.Model;

namespace SimKO.Host.Bench;

/// <summary>
/// The llama.cpp side of `bench --only decode`: writes the bench's model as an f32 GGUF
/// (<see cref="GgufExport"/>) and runs tools/LlamaCppBaseline on it as a child process (llama.cpp's
/// native libraries stay out of the simko executable). The tool answers the equality check first
/// (next-token logits and greedy tokens of a check prompt), then one timed decode run per batch size
/// asked (<see cref="Seconds"/>), so the bench can alternate its runs with its own engines'. Found at
/// $SIMKO_LLAMACPP_BASELINE, else tools/LlamaCppBaseline/bin/Release/net10.0/linux-x64/LlamaCppBaseline.dll
/// above the working directory or the simko executable; built with
/// <c>dotnet build tools/LlamaCppBaseline -c Release</c>.
/// </summary>
public sealed class LlamaCppBaseline : IDisposable
{
    const string RelativeDll = "tools/LlamaCppBaseline/bin/Release/net10.0/linux-x64/LlamaCppBaseline.dll";
    readonly Process _process;
    readonly string _gguf, _request;

    public float[] CheckLogits { get; }
    public int[] CheckGreedyTokens { get; }
    public string SystemInfo { get; }

    LlamaCppBaseline(Process process, string gguf, string request, JsonObject first)
    {
        _process = process; _gguf = gguf; _request = request;
        CheckLogits = first["check_logits"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
        CheckGreedyTokens = first["check_greedy_tokens"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        SystemInfo = first["system_info"]?.GetValue<string>() ?? "";
    }

    /// <summary>The tool's path, or null (with the reason) when it is not built.</summary>
    public static string? Find(out string why)
    {
        var env = Environment.GetEnvironmentVariable("SIMKO_LLAMACPP_BASELINE");
        if (!string.IsNullOrEmpty(env))
        {
            why = File.Exists(env) ? "" : $"SIMKO_LLAMACPP_BASELINE={env}: no such file";
            return File.Exists(env) ? env : null;
        }
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                var f = Path.Combine(d.FullName, RelativeDll);
                if (File.Exists(f)) { why = ""; return f; }
            }
        why = $"{RelativeDll} not found (build it: dotnet build tools/LlamaCppBaseline -c Release, or set SIMKO_LLAMACPP_BASELINE)";
        return null;
    }

    /// <summary>Write the GGUF, start the tool and read its check answer; null (with the reason) when the
    /// tool is not built or fails to start.</summary>
    public static LlamaCppBaseline? TryStart(CausalLM model, IReadOnlyList<int[]> prompts, int[] checkPrompt, int checkTokens, int threads, int newTokens, ILogger log, out string why)
    {
        var dll = Find(out why);
        if (dll is null) return null;
        var stem = Path.Combine(Path.GetTempPath(), $"simko-decode-{Environment.ProcessId}");
        string gguf = stem + ".gguf", request = stem + ".json";
        GgufExport.WriteLlama(model, gguf);
        var req = new JsonObject
        {
            ["gguf"] = gguf, ["threads"] = threads, ["new_tokens"] = newTokens, ["check_tokens"] = checkTokens,
            ["prompts"] = new JsonArray(prompts.Select(p => (JsonNode?)new JsonArray(p.Select(x => (JsonNode?)x).ToArray())).ToArray()),
            ["check_prompt"] = new JsonArray(checkPrompt.Select(x => (JsonNode?)x).ToArray()),
        };
        AtomicFile.WriteAllText(request, req.ToJsonString());
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add(request);
        Process? p = null;
        try
        {
            p = Process.Start(psi) ?? throw new InvalidOperationException("dotnet did not start");
            var stderr = new System.Text.StringBuilder();
            p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
            p.BeginErrorReadLine();
            var line = p.StandardOutput.ReadLine();
            if (line is null)
            {
                p.WaitForExit(10_000);
                lock (stderr) throw new InvalidOperationException($"{dll} ended without an answer: {stderr.ToString().Trim()}");
            }
            var first = JsonNode.Parse(line)!.AsObject();
            var result = new LlamaCppBaseline(p, gguf, request, first);
            log.LogInformation("decode: llama.cpp baseline {Dll} ({Info})", dll, result.SystemInfo.Trim());
            return result;
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or JsonException or IOException)
        {
            why = $"{dll}: {e.Message}";
            if (p is { HasExited: false }) p.Kill();
            p?.Dispose();
            File.Delete(gguf); File.Delete(request);
            return null;
        }
    }

    /// <summary>Seconds of one llama.cpp decode of the first <paramref name="b"/> prompts × new tokens with
    /// <paramref name="threads"/> threads.</summary>
    public double Seconds(int b, int threads)
    {
        _process.StandardInput.WriteLine($"{b} {threads}");
        _process.StandardInput.Flush();
        var line = _process.StandardOutput.ReadLine() ?? throw new InvalidOperationException("the llama.cpp baseline ended early");
        var o = JsonNode.Parse(line)!.AsObject();
        if (o["error"] is { } e) throw new InvalidOperationException($"the llama.cpp baseline: {e}");
        return o["seconds"]!.GetValue<double>();
    }

    public void Dispose()
    {
        try
        {
            _process.StandardInput.Close();
            if (!_process.WaitForExit(30_000)) _process.Kill();
        }
        finally
        {
            _process.Dispose();
            File.Delete(_gguf); File.Delete(_request);
        }
    }
}
