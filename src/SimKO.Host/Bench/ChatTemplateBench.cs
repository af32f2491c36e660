using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SimKO.Data.Chat;
using SimKO.Data.Math;
using SimKO.Data.Sandbox;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// `bench --only chat-template`: rendering prompts with a model's chat template (Jinja2 in the sandbox, as
/// <see cref="ChatTemplate"/> does for training, evaluation and serve's chat route), per prompt: cold one at a
/// time (a server's new conversation: one request to a worker each), cold in one batch (a dataset's prompts,
/// one batch per worker) and cached (a conversation seen before). The template is the Qwen3 tokenizer's in
/// ../shared/fixtures (skipped without it). Writes <c>report["chat_template"]</c>.
/// </summary>
public static class ChatTemplateBench
{
    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        table.AppendLine("## Chat templates (Jinja2 in the sandbox)").AppendLine();
        var root = Datasets.FindRepoRoot(AppContext.BaseDirectory) ?? Datasets.FindRepoRoot(Environment.CurrentDirectory);
        var folder = root is null ? null : Path.GetFullPath(Path.Combine(root, "..", "shared", "fixtures", "qwen3-tokenizer"));
        if (folder is null || !File.Exists(Path.Combine(folder, "tokenizer_config.json")))
        {
            BenchSandbox.Skip("chat_template", "the Qwen3 tokenizer fixture (../shared/fixtures/qwen3-tokenizer) is not here", report, table, log);
            return;
        }
        var settings = SandboxSettings.Defaults;
        if (BenchSandbox.Open(settings, "chat_template", report, table, log) is not { } pool) return;
        using (pool)
        {
            pool.GradeMany(Enumerable.Repeat("pass", 2 * settings.WorkerCount).ToArray());  // starts every worker
            int single = quick ? 50 : 200, batch = quick ? 1000 : 10000;
            IReadOnlyList<ChatMessage> Conversation(int i) =>
                [new("system", "You are a careful mathematician."), new("user", $"What is {i} + {i + 1}? Please reason step by step, and put your final answer within \\boxed{{}}."),
                 new("assistant", $"{i} + {i + 1} = \\boxed{{{2 * i + 1}}}"), new("user", $"And {i} times {i + 2}?")];
            var template = ChatTemplate.FromFolder(folder);
            template.Render(pool, Conversation(-1));  // compiles the template in one worker
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < single; i++) template.Render(pool, Conversation(i));
            double coldSingle = sw.Elapsed.TotalSeconds / single;
            var many = Enumerable.Range(single, batch).Select(Conversation).ToList();
            sw.Restart();
            template.RenderMany(pool, many);
            double coldBatch = sw.Elapsed.TotalSeconds / batch;
            sw.Restart();
            template.RenderMany(pool, many);
            double cachedBatch = sw.Elapsed.TotalSeconds / batch;
            sw.Restart();
            for (int i = 0; i < single; i++) template.Render(pool, Conversation(i));
            double cachedSingle = sw.Elapsed.TotalSeconds / single;
            report["chat_template"] = new JsonObject
            {
                ["template"] = template.Source, ["workers"] = settings.WorkerCount, ["messages_per_conversation"] = 4,
                ["cold_single_prompts"] = single, ["cold_single_seconds_per_prompt"] = coldSingle,
                ["cold_batch_prompts"] = batch, ["cold_batch_seconds_per_prompt"] = coldBatch,
                ["cached_batch_seconds_per_prompt"] = cachedBatch, ["cached_single_seconds_per_prompt"] = cachedSingle,
            };
            string Us(double s) => (s * 1e6).ToString("N1", CultureInfo.InvariantCulture);
            table.AppendLine($"Qwen3's template ({template.Source}), 4-message conversations, {settings.WorkerCount} workers.").AppendLine();
            table.AppendLine("| rendering | µs per prompt |").AppendLine("|---|---:|");
            table.AppendLine($"| cold, one at a time ({single}) | {Us(coldSingle)} |");
            table.AppendLine($"| cold, one batch of {batch:N0} | {Us(coldBatch)} |");
            table.AppendLine($"| cached, the same batch again | {Us(cachedBatch)} |");
            table.AppendLine($"| cached, one at a time | {Us(cachedSingle)} |").AppendLine();
            log.LogInformation("chat template: cold {Cold:F1} µs/prompt one at a time, {Batch:F1} µs in a batch, cached {Cached:F2} µs", coldSingle * 1e6, coldBatch * 1e6, cachedBatch * 1e6);
        }
    }
}
