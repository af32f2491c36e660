using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Data.Sandbox;

namespace SimKO.Host.Bench;

/// <summary>The sandbox pool a bench section runs on, or the reason there is none, recorded as
/// <c>report[key] = {"skipped": why}</c> and a "not run" line in the table.</summary>
public static class BenchSandbox
{
    public static SandboxPool? Open(SandboxSettings settings, string key, JsonObject report, StringBuilder table, ILogger log)
    {
        try { return new SandboxPool(settings); }
        catch (SandboxUnavailableException e)
        {
            Skip(key, e.Message, report, table, log);
            return null;
        }
    }

    /// <summary>Records that the section <paramref name="key"/> did not run, and why.</summary>
    public static void Skip(string key, string why, JsonObject report, StringBuilder table, ILogger log)
    {
        report[key] = new JsonObject { ["skipped"] = why };
        table.AppendLine($"not run: {why}").AppendLine();
        log.LogWarning("bench section {Key} skipped: {Why}", key, why);
    }
}
