using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace SimKO.Data.Sandbox;

/// <summary>
/// One long-lived sandboxed python process (<c>worker.py</c>) that grades programs sent to it one at a time,
/// each in a fresh child with its own temporary folder. A dedicated thread reads its answers, so a worker
/// that hangs can be timed out and killed (with its whole process tree).
/// </summary>
internal sealed class SandboxWorker : IDisposable
{
    readonly Process _process;
    readonly BlockingCollection<string?> _lines = new();
    readonly StringBuilder _stderr = new();
    readonly string? _hostTmp;
    readonly TimeSpan _backstop;
    long _nextId;
    bool _disposed;

    /// <summary>Whether the worker is alone in a pid namespace of its own, so that every process a program
    /// leaves behind is killed after it (false only without isolation: then its process group is).</summary>
    public bool PidNamespace { get; }
    public bool Broken { get; private set; }

    SandboxWorker(SandboxSettings s, Isolation isolation)
    {
        if (isolation == Isolation.None) _hostTmp = Directory.CreateTempSubdirectory("simko-sandbox-").FullName;
        _backstop = TimeSpan.FromSeconds(s.WallSeconds + 5);
        var psi = SandboxLauncher.StartInfo(s, isolation, _hostTmp);
        try
        {
            _process = Process.Start(psi) ?? throw new SandboxUnavailableException($"could not start {psi.FileName}");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            DeleteHostTmp();
            throw new SandboxUnavailableException($"could not start the sandbox ({psi.FileName}): {e.Message}. {CodeSandbox.OptOut}");
        }
        var stdout = _process.StandardOutput;
        new Thread(() =>
        {
            try { for (string? line; (line = stdout.ReadLine()) is not null;) _lines.Add(line); }
            catch (Exception) { /* the process went away; the null below says so */ }
            finally { _lines.Add(null); }
        }) { IsBackground = true, Name = "sandbox-worker-stdout" }.Start();
        var stderr = _process.StandardError;
        new Thread(() =>
        {
            try
            {
                for (string? line; (line = stderr.ReadLine()) is not null;)
                    lock (_stderr) { if (_stderr.Length < 8192) _stderr.AppendLine(line); }
            }
            catch (Exception) { /* gone */ }
        }) { IsBackground = true, Name = "sandbox-worker-stderr" }.Start();

        var ready = _lines.TryTake(out var first, TimeSpan.FromSeconds(20)) ? first : null;
        if (ready is null)
        {
            Kill();
            throw new SandboxUnavailableException($"the sandbox ({isolation}) did not start: {StderrText()}. {CodeSandbox.OptOut}");
        }
        using var doc = JsonDocument.Parse(ready);
        var root = doc.RootElement;
        PidNamespace = root.GetProperty("pid_namespace").GetBoolean();
        var visible = root.GetProperty("visible").EnumerateArray().Select(v => v.GetString()).ToList();
        if (visible.Count > 0)
        {
            Kill();
            throw new SandboxUnavailableException($"the sandbox ({isolation}) can see host paths it must not: {string.Join(", ", visible)}; refusing to run programs in it. {CodeSandbox.OptOut}");
        }
    }

    public static SandboxWorker Start(SandboxSettings s, Isolation isolation) => new(s, isolation);

    string StderrText()
    {
        lock (_stderr) return _stderr.Length == 0 ? "(no message)" : _stderr.ToString().Trim();
    }

    /// <summary>Grades one program, or null when the worker died under it (it is then Broken).
    /// A worker that does not answer within the wall limit plus 5 s is killed and the program timed out.</summary>
    public GradeResult? Run(string code)
    {
        if (Broken) return null;
        long id = ++_nextId;
        try
        {
            _process.StandardInput.WriteLine(JsonSerializer.Serialize(new { id, code }));
            _process.StandardInput.Flush();
        }
        catch (IOException)
        {
            Broken = true;
            return null;
        }
        if (!_lines.TryTake(out var line, _backstop))
        {
            Broken = true;
            Kill();
            return new GradeResult(Outcome.TimedOut, "", $"the sandbox worker did not answer within {_backstop.TotalSeconds:F0} s and was killed", _backstop.TotalSeconds);
        }
        if (line is null)
        {
            Broken = true;
            return null;
        }
        try
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            if (r.GetProperty("id").GetInt64() != id) throw new FormatException($"answer for id {r.GetProperty("id")} while waiting for {id}");
            string Str(string name) => r.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
            double seconds = r.GetProperty("seconds").GetDouble();
            var outcome = Str("kind") switch
            {
                "passed" => Outcome.Passed,
                "failed" => Outcome.Failed,
                "timeout" => Outcome.TimedOut,
                "memory" => Outcome.MemoryExceeded,
                "output" => Outcome.OutputTooLarge,
                var k => throw new FormatException($"unknown kind '{k}'"),
            };
            return new GradeResult(outcome, Str("type"), Str("message"), seconds);
        }
        catch (Exception e) when (e is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
        {
            Broken = true;
            Kill();
            return new GradeResult(Outcome.SandboxError, "", $"unreadable answer from the sandbox worker ({e.Message}): {line}", 0);
        }
    }

    /// <summary>Sends one request object (an "id" is added) and returns the worker's answer, or null when
    /// the worker died or did not answer within <paramref name="backstop"/> (it is then Broken and killed).</summary>
    public System.Text.Json.Nodes.JsonObject? Request(System.Text.Json.Nodes.JsonObject request, TimeSpan backstop)
    {
        if (Broken) return null;
        long id = ++_nextId;
        request["id"] = id;
        try
        {
            _process.StandardInput.WriteLine(request.ToJsonString());
            _process.StandardInput.Flush();
        }
        catch (IOException) { Broken = true; return null; }
        if (!_lines.TryTake(out var line, backstop) || line is null) { Broken = true; Kill(); return null; }
        try
        {
            var answer = System.Text.Json.Nodes.JsonNode.Parse(line) as System.Text.Json.Nodes.JsonObject;
            if (answer?["id"]?.GetValue<long>() == id) return answer;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException) { }
        Broken = true;
        Kill();
        return null;
    }

    /// <summary>Why the worker died, from its stderr.</summary>
    public string DeathNote() => StderrText();

    void Kill()
    {
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception) { }
        try { _process.WaitForExit(5000); } catch (InvalidOperationException) { }
    }

    void DeleteHostTmp()
    {
        if (_hostTmp is not null && Directory.Exists(_hostTmp))
            try { Directory.Delete(_hostTmp, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Closes the worker's input (it exits at end of input), kills it if it has not exited within
    /// a second, and removes its host temporary folder (isolation None).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try { _process.StandardInput.Close(); } catch (IOException) { }
        try { if (!_process.WaitForExit(1000)) Kill(); } catch (InvalidOperationException) { }
        _process.Dispose();
        DeleteHostTmp();
    }
}
