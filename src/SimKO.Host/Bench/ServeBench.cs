using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SimKO.Data.Tokenizers;
using SimKO.Host.Diagnostics;
using SimKO.Host.Model;
using SimKO.Host.Rollout;
using SimKO.Host.Serving;
using static TorchSharp.torch;

namespace SimKO.Host.Bench;

/// <summary>
/// `bench --only serve` (issue 13): sequences whose response lengths vary as in RL (a geometric stop
/// with mean ≈ max_tokens / 4, capped at max_tokens) through 64 slots. Useful tokens/s of continuous
/// batching vs static batching (chunks of 64 that run until their longest row ends), tokens/s through
/// HTTP (<c>simko serve</c> on loopback, one request per sequence) vs in process, and resident memory
/// over 1,000 HTTP requests.
/// </summary>
public static class ServeBench
{
    const int Slots = 64;

    public static void Run(JsonObject report, StringBuilder table, bool quick, Device device, ILogger log)
    {
        int sequences = quick ? 128 : 256, maxTokens = quick ? 64 : 128, reps = 5;
        var tokenizer = new CharTokenizer(new string(Enumerable.Range(0, 62).Select(i => (char)('0' + i)).ToArray()));
        using var model = new CausalLM(ModelConfig.Tiny(tokenizer.VocabSize, 256, 4, 4, 4, 1024, 1024));
        model.InitWeights(1);
        model.MoveTo(device, ScalarType.Float32).eval();

        var rng = new Random(13);
        double p = 4.0 / maxTokens;
        var lengths = Enumerable.Range(0, sequences).Select(_ => System.Math.Min(maxTokens, 1 + (int)System.Math.Floor(System.Math.Log(1 - rng.NextDouble()) / System.Math.Log(1 - p)))).ToArray();
        var prompts = Enumerable.Range(0, sequences).Select(i => Enumerable.Range(0, 8).Select(j => 2 + (i * 7 + j * 3) % 60).ToArray()).ToArray();
        long useful = lengths.Sum();
        // a static batch decodes as many steps as its longest row
        long staticSteps = Enumerable.Range(0, (sequences + Slots - 1) / Slots).Sum(c => (long)lengths.Skip(c * Slots).Take(Slots).Max());

        double Static()
        {
            var sampler = new KvCacheSampler(model, tokenizer.PadId) { MaxRows = Slots };
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int start = 0; start < sequences; start += Slots)
            {
                var chunk = Enumerable.Range(start, System.Math.Min(Slots, sequences - start)).ToList();
                // a static batch decodes until its longest row ends; the others hold their slots
                sampler.Generate(new GenerateRequest(chunk.Select(i => prompts[i]).ToList(), 1, 1.0, 1.0, 0, chunk.Max(i => lengths[i]), start));
            }
            return clock.Elapsed.TotalSeconds;
        }
        long contSteps = 0, httpSteps = 0;
        double Continuous()
        {
            using var engine = new ContinuousBatcher(model, tokenizer.PadId, Slots);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var tasks = engine.SubmitAll(Enumerable.Range(0, sequences)
                .Select(i => new SequenceJob(prompts[i], new SamplingSettings(1.0, 1.0, 0, lengths[i]), i)).ToList(), bounded: false);
            Task.WaitAll(tasks.ToArray());
            contSteps = engine.Stats.DecodeSteps;
            return clock.Elapsed.TotalSeconds;
        }

        // the same workload through HTTP, one request per sequence, all in flight (the server queues them)
        var chat = ChatMarkup.FromTemplate(null, tokenizer);
        var server = SimkoServer.StartAsync(model, tokenizer, chat, "bench", new ServeOptions("127.0.0.1", 0, null, Slots, 4096), NullLogger.Instance).GetAwaiter().GetResult();
        double staticS, contS, httpS;
        long rssWarm, rssEnd;
        JsonObject soak;
        int memoryRequests = 1000;
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
            var url = server.Url + "/v1/completions";
            async Task Post(int[] prompt, int maxNew, long seed)
            {
                var body = new JsonObject
                {
                    ["prompt"] = new JsonArray(prompt.Select(x => (JsonNode)x).ToArray()), ["max_tokens"] = maxNew, ["seed"] = seed,
                    ["logprobs"] = 1, ["return_tokens_as_token_ids"] = true, ["ignore_eos"] = true,
                }.ToJsonString();
                using var resp = await http.PostAsync(url, new StringContent(body, Encoding.UTF8, "application/json"));
                var text = await resp.Content.ReadAsStringAsync();
                if (!resp.IsSuccessStatusCode) throw new InvalidOperationException($"{url}: HTTP {(int)resp.StatusCode}: {text}");
            }
            async Task Many(int count, int concurrency, Func<int, Task> one)
            {
                using var gate = new SemaphoreSlim(concurrency);
                await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
                {
                    await gate.WaitAsync();
                    try { await one(i); } finally { gate.Release(); }
                }));
            }
            double Http()
            {
                long before = server.Engine.Stats.DecodeSteps;
                var clock = System.Diagnostics.Stopwatch.StartNew();
                // every sequence in flight at once, as in process (the server queues what its 64 slots cannot take)
                Many(sequences, sequences, i => Post(prompts[i], lengths[i], i)).GetAwaiter().GetResult();
                httpSteps = server.Engine.Stats.DecodeSteps - before;
                return clock.Elapsed.TotalSeconds;
            }
            Static(); Continuous(); Http();                                             // warm-up
            // the three interleaved in every repetition, so that a busy machine slows them alike
            var runs = Enumerable.Range(0, reps).Select(_ => (S: Static(), C: Continuous(), H: Http())).ToList();
            staticS = MedianOf(runs.Select(r => r.S)); contS = MedianOf(runs.Select(r => r.C)); httpS = MedianOf(runs.Select(r => r.H));
            // memory: 1,000 small requests; RSS after the first 100 and at the end
            Many(100, 16, i => Post(prompts[i % sequences], 4, i)).GetAwaiter().GetResult();
            GC.Collect(); GC.WaitForPendingFinalizers();
            rssWarm = ProcessMemory.Read().Rss;
            Many(memoryRequests - 100, 16, i => Post(prompts[i % sequences], 4, i)).GetAwaiter().GetResult();
            GC.Collect(); GC.WaitForPendingFinalizers();
            rssEnd = ProcessMemory.Read().Rss;
            soak = Soak(server, model, tokenizer);
        }
        finally { server.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        double staticRate = useful / staticS, contRate = useful / contS;
        log.LogInformation("serve: static {S:F0} useful tokens/s, continuous {C:F0} ({R:F2}×)", staticRate, contRate, contRate / staticRate);
        double httpRate = useful / httpS;
        log.LogInformation("serve: decode steps static {S}, continuous in process {A}, through HTTP {B}", staticSteps, contSteps, httpSteps);
        log.LogInformation("serve: HTTP {H:F0} tokens/s ({R:F2}× in process); RSS {A:F1} → {B:F1} MiB over {N} requests",
            httpRate, httpRate / contRate, rssWarm / 1048576.0, rssEnd / 1048576.0, memoryRequests);

        report["serve"] = new JsonObject
        {
            ["model"] = "d256 × 4 layers, vocab 64", ["slots"] = Slots, ["sequences"] = sequences, ["max_tokens"] = maxTokens,
            ["mean_response_tokens"] = (double)useful / sequences, ["useful_tokens"] = useful, ["repetitions"] = reps,
            ["static_tokens_per_s"] = staticRate, ["continuous_tokens_per_s"] = contRate, ["continuous_over_static"] = contRate / staticRate,
            ["http_tokens_per_s"] = httpRate, ["http_over_in_process"] = httpRate / contRate,
            ["static_decode_steps"] = staticSteps, ["in_process_decode_steps"] = contSteps, ["http_decode_steps"] = httpSteps,
            ["memory_requests"] = memoryRequests, ["rss_after_100_bytes"] = rssWarm, ["rss_end_bytes"] = rssEnd, ["rss_growth_bytes"] = rssEnd - rssWarm,
            ["targets"] = "continuous_over_static >= 1.5, http_over_in_process >= 0.9, no RSS growth; soak: soak_5xx = 0, soak_valid_failed = 0, rss_growth_fraction <= 0.05",
        };
        foreach (var (k, v) in soak.ToList()) { soak.Remove(k); ((JsonObject)report["serve"]!)[k] = v; }
        log.LogInformation("serve soak: {N} requests, {C} completed, {E4} 4xx, {E5} 5xx, {D} disconnected, {VF} valid failed; valid p50 {P50:F1} ms p99 {P99:F1} ms; RSS {A:F1} → {B:F1} MiB ({G:P1})",
            report["serve"]!["soak_requests"], report["serve"]!["soak_completed"], report["serve"]!["soak_4xx"], report["serve"]!["soak_5xx"],
            report["serve"]!["soak_disconnected"], report["serve"]!["soak_valid_failed"], (double)report["serve"]!["soak_valid_p50_ms"]!, (double)report["serve"]!["soak_valid_p99_ms"]!,
            (long)report["serve"]!["soak_rss_before_bytes"]! / 1048576.0, (long)report["serve"]!["soak_rss_after_bytes"]! / 1048576.0, (double)report["serve"]!["rss_growth_fraction"]!);
        string F(double x, string fmt) => x.ToString(fmt, CultureInfo.InvariantCulture);
        table.AppendLine($"## Serving ({sequences} sequences through {Slots} slots, d256 × 4 layers, geometric response lengths: mean {F((double)useful / sequences, "0.0")} of max {maxTokens} tokens)").AppendLine();
        table.AppendLine("| | useful tokens/s | ratio | target |").AppendLine("|---|---:|---:|---:|");
        table.AppendLine($"| static batching (chunks of {Slots} run to their longest row) | {F(staticRate, "0")} | 1.00 | |");
        table.AppendLine($"| continuous batching, in process | {F(contRate, "0")} | {F(contRate / staticRate, "0.00")}× static | ≥ 1.5× |");
        table.AppendLine($"| continuous batching through HTTP (`simko serve`, one request per sequence, all sent at once) | {F(httpRate, "0")} | {F(httpRate / contRate, "0.00")}× in process | ≥ 0.9× |").AppendLine();
        table.AppendLine($"Decode steps (batched forward passes of one token per row): static {staticSteps}, continuous {contSteps} in process and {httpSteps} through HTTP. " +
            $"Medians of {reps} interleaved repetitions; on a shared, busy machine the times vary run to run, the step counts do not.").AppendLine();
        table.AppendLine($"Resident memory over {memoryRequests} HTTP requests: {F(rssWarm / 1048576.0, "0.0")} MiB after 100, {F(rssEnd / 1048576.0, "0.0")} MiB at the end ({F((rssEnd - rssWarm) / 1048576.0, "+0.0;-0.0")} MiB).").AppendLine();
        var sv = (JsonObject)report["serve"]!;
        table.AppendLine($"Soak (issue 24): {sv["soak_requests"]} mixed requests (valid, malformed, disconnecting, oversized, wrong content type, concurrent reloads) from {sv["soak_concurrency"]} loops on loopback: " +
            $"{sv["soak_completed"]} completed, {sv["soak_4xx"]} 4xx, {sv["soak_5xx"]} 5xx, {sv["soak_disconnected"]} disconnected, {sv["soak_valid_failed"]} valid failed; " +
            $"valid p50 {F((double)sv["soak_valid_p50_ms"]!, "0.0")} ms, p99 {F((double)sv["soak_valid_p99_ms"]!, "0.0")} ms; RSS {F((long)sv["soak_rss_before_bytes"]! / 1048576.0, "0.0")} → {F((long)sv["soak_rss_after_bytes"]! / 1048576.0, "0.0")} MiB ({F((double)sv["rss_growth_fraction"]! * 100, "+0.0;-0.0")} %). Targets: 0 5xx, 0 valid failed, growth ≤ 5 %.").AppendLine();
    }

    /// <summary>
    /// The soak of issue 24: 1,000 requests from a bounded loop (16 in flight) on loopback, ten kinds in
    /// turn: five valid completions; malformed bodies (bad JSON, duplicate keys, a lone surrogate, wrong
    /// types); clients that disconnect mid-request; oversized asks (n past the limit, max_tokens past the
    /// context, a body past the byte limit); a text/plain POST; and reloads (every fifth one of the
    /// served weights, the others of a missing folder) running concurrently with the rest.
    /// </summary>
    static JsonObject Soak(SimkoServer server, CausalLM model, ITokenizer tokenizer)
    {
        const int requests = 1000, concurrency = 16;
        var folder = Path.Combine(Path.GetTempPath(), $"simko-soak-{Environment.ProcessId}");
        SimKO.Host.Checkpoints.HfFolder.Save(model, tokenizer, folder);
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(5) };
        var url = server.Url + "/v1/completions";
        int completed = 0, c4 = 0, c5 = 0, disconnected = 0, validFailed = 0;
        var validMs = new System.Collections.Concurrent.ConcurrentBag<double>();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        string Valid(int i) => new JsonObject
        {
            ["prompt"] = new JsonArray(Enumerable.Range(0, 8).Select(j => (JsonNode)(2 + (i * 7 + j * 3) % 60)).ToArray()),
            ["max_tokens"] = 8, ["seed"] = i, ["logprobs"] = 1, ["return_tokens_as_token_ids"] = true, ["ignore_eos"] = true,
        }.ToJsonString();
        string[] malformed = ["{\"prompt\": ", "{\"prompt\": \"ab\", \"prompt\": \"cd\"}", "{\"prompt\": \"a\\ud800b\"}", "{\"prompt\": [1, \"x\"]}",
            "{\"prompt\": \"ab\", \"temperature\": \"hot\"}", "[1, 2]", "{\"prompt\": \"ab\", \"stop\": [5]}"];
        string[] oversized = ["{\"prompt\": \"ab\", \"n\": 100000}", "{\"prompt\": \"ab\", \"max_tokens\": 1000000000}",
            "{\"prompt\": \"" + new string('a', 5 << 20) + "\"}"];
        async Task<(int Status, string Body)> Send(string path, string body, string type = "application/json", CancellationToken ct = default)
        {
            using var content = new StringContent(body, Encoding.UTF8);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(type);
            using var resp = await http.PostAsync(server.Url + path, content, ct);
            return ((int)resp.StatusCode, await resp.Content.ReadAsStringAsync(ct));
        }
        void Count(int status, string what, string body)
        {
            if (status is >= 200 and < 300) Interlocked.Increment(ref completed);
            else if (status is >= 400 and < 500) Interlocked.Increment(ref c4);
            else { Interlocked.Increment(ref c5); failures.Enqueue($"{what}: {status} {body[..System.Math.Min(200, body.Length)]}"); }
        }
        async Task One(int i)
        {
            switch (i % 10)
            {
                case < 5:
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    var (s, b) = await Send("/v1/completions", Valid(i));
                    Count(s, "valid", b);
                    if (s == 200) validMs.Add(clock.Elapsed.TotalMilliseconds);
                    else { Interlocked.Increment(ref validFailed); failures.Enqueue($"valid {i}: {s} {b[..System.Math.Min(200, b.Length)]}"); }
                    break;
                case 5: { var (s2, b2) = await Send("/v1/completions", malformed[i / 10 % malformed.Length]); Count(s2, "malformed", b2); break; }
                case 6:
                    using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(5 + i % 40)))
                    {
                        try { var (s3, b3) = await Send("/v1/completions", "{\"prompt\": [5, 6, 7], \"max_tokens\": 200, \"ignore_eos\": true}", ct: cts.Token); Count(s3, "disconnecting", b3); }
                        catch (OperationCanceledException) { Interlocked.Increment(ref disconnected); }
                    }
                    break;
                case 7: { var (s4, b4) = await Send("/v1/completions", oversized[i / 10 % oversized.Length]); Count(s4, "oversized", b4); break; }
                case 8: { var (s5, b5) = await Send("/v1/completions", Valid(i), "text/plain"); Count(s5, "text/plain", b5); break; }
                default:
                    var target = i % 50 == 9 ? folder : folder + "-missing";
                    var (s6, b6) = await Send("/update_weights_from_disk", new JsonObject { ["model_path"] = target }.ToJsonString());
                    Count(s6, "reload", b6);
                    break;
            }
        }
        async Task Loop(int from, int to)
        {
            using var gate = new SemaphoreSlim(concurrency);
            await Task.WhenAll(Enumerable.Range(from, to - from).Select(async i =>
            {
                await gate.WaitAsync();
                try { await One(i); }
                catch (Exception e) when (e is HttpRequestException or IOException)
                {
                    // the server closing a connection on a too-large body is a 413 the client could not read
                    if (i % 10 == 7) Interlocked.Increment(ref c4);
                    else { Interlocked.Increment(ref c5); failures.Enqueue($"request {i}: {e.Message}"); if (i % 10 < 5) Interlocked.Increment(ref validFailed); }
                }
                finally { gate.Release(); }
            }));
        }
        Loop(0, 100).GetAwaiter().GetResult();                              // warm-up, counted
        GC.Collect(); GC.WaitForPendingFinalizers();
        long before = ProcessMemory.Read().Rss;
        Loop(100, requests).GetAwaiter().GetResult();
        GC.Collect(); GC.WaitForPendingFinalizers();
        long after = ProcessMemory.Read().Rss;
        try { Directory.Delete(folder, true); } catch (IOException) { }
        var ms = validMs.OrderBy(x => x).ToArray();
        double Pct(double q) => ms.Length == 0 ? double.NaN : ms[System.Math.Min(ms.Length - 1, (int)System.Math.Ceiling(q * ms.Length) - 1)];
        return new JsonObject
        {
            ["soak_requests"] = requests, ["soak_concurrency"] = concurrency, ["soak_completed"] = completed, ["soak_4xx"] = c4, ["soak_5xx"] = c5,
            ["soak_disconnected"] = disconnected, ["soak_valid_failed"] = validFailed, ["soak_valid"] = ms.Length,
            ["soak_valid_p50_ms"] = Pct(0.5), ["soak_valid_p99_ms"] = Pct(0.99),
            ["soak_rss_before_bytes"] = before, ["soak_rss_after_bytes"] = after, ["rss_growth_fraction"] = (double)(after - before) / before,
            ["soak_failures"] = new JsonArray(failures.Take(10).Select(f => (JsonNode)f).ToArray()),
        };
    }

    static double MedianOf(IEnumerable<double> values)
    {
        var xs = values.OrderBy(x => x).ToArray();
        return xs[xs.Length / 2];
    }
}
