using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SimKO.Data.Tokenizers;
using SimKO.Host.Checkpoints;
using SimKO.Host.Model;
using SimKO.Host.Rollout;

namespace SimKO.Host.Serving;

/// <summary>Settings of <c>simko serve</c>. Port 0 picks a free port (tests).</summary>
public sealed record ServeOptions(string Host = "127.0.0.1", int Port = 8000, string? ApiKey = null, int MaxBatch = 64, int MaxQueue = 1024)
{
    /// <summary>Largest request body accepted (bytes).</summary>
    public long MaxRequestBytes { get; init; } = 4 << 20;
    /// <summary>Most sequences (prompts × n) in one request.</summary>
    public int MaxSequencesPerRequest { get; init; } = 256;
    /// <summary>Most new tokens per sequence (also bounded by the model's context).</summary>
    public int MaxNewTokens { get; init; } = 8192;
    /// <summary>Seconds a client is told to wait when the queue is full.</summary>
    public int RetryAfterSeconds { get; init; } = 1;
}

/// <summary>
/// <c>simko serve</c>: the continuous-batching engine behind the OpenAI-compatible subset that vLLM and
/// SGLang offer (ASP.NET Core minimal APIs on Kestrel): <c>GET /v1/models</c>, <c>POST /v1/completions</c>,
/// <c>POST /v1/chat/completions</c>, <c>GET /health</c>, SGLang's <c>POST /update_weights_from_disk</c>, and vLLM's
/// <c>POST /v1/load_lora_adapter</c> / <c>/v1/unload_lora_adapter</c> (requests name an adapter as their model: <see cref="ServedAdapters"/>).
/// Errors are OpenAI-style <c>{"error": {"message", "type", "param", "code"}}</c>; a bad request never
/// stops the server. Every response carries the weights version in <c>X-Weights-Version</c>.
/// </summary>
public sealed class SimkoServer : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly CausalLM _model;
    readonly ITokenizer _tokenizer;
    readonly ChatMarkup _chat;
    readonly ServeOptions _options;
    readonly RequestLimits _limits;
    readonly ILogger _log;
    readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    readonly object _swapLock = new();
    readonly ServedAdapters _adapters;

    public ContinuousBatcher Engine { get; }
    public string ModelName { get; }
    /// <summary>Base address, e.g. http://127.0.0.1:8000 (the real port when started with port 0).</summary>
    public string Url { get; private set; } = "";

    SimkoServer(WebApplication app, CausalLM model, ITokenizer tokenizer, ChatMarkup chat, string modelName, ServeOptions options, ILogger log)
    {
        _app = app; _model = model; _tokenizer = tokenizer; _chat = chat; ModelName = modelName; _options = options; _log = log;
        var context = model.Config.MaxPositionEmbeddings;
        _limits = new RequestLimits(MaxPromptTokens: context, MaxNewTokens: System.Math.Min(options.MaxNewTokens, context),
            MaxSequences: options.MaxSequencesPerRequest, MaxContext: context);
        Engine = new ContinuousBatcher(model, tokenizer.PadId, options.MaxBatch, options.MaxQueue, ids => Decode(ids)) { SampledVocab = tokenizer.VocabSize };
        _adapters = new ServedAdapters(model, Engine);
    }

    /// <summary>Start serving <paramref name="model"/> (already on its device, in eval mode) on the options' host and port.</summary>
    public static async Task<SimkoServer> StartAsync(CausalLM model, ITokenizer tokenizer, ChatMarkup chat, string modelName, ServeOptions options, ILogger log)
    {
        if (options.MaxBatch < 1) throw new ArgumentException($"--max-batch is {options.MaxBatch}; expected at least 1");
        if (options.MaxQueue < 0) throw new ArgumentException($"--max-queue is {options.MaxQueue}; expected at least 0");
        if (!IPAddress.TryParse(options.Host == "localhost" ? "127.0.0.1" : options.Host, out var address))
            throw new ArgumentException($"--host '{options.Host}' is not an IP address (e.g. 127.0.0.1, or 0.0.0.0 for every interface)");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(address, options.Port);
            k.Limits.MaxRequestBodySize = options.MaxRequestBytes;
        });
        var app = builder.Build();
        var server = new SimkoServer(app, model, tokenizer, chat, modelName, options, log);
        server.Map();
        await app.StartAsync();
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Url = bound.Replace("0.0.0.0", "127.0.0.1").Replace("[::]", "127.0.0.1").TrimEnd('/');
        log.LogInformation("serving {Model} at {Url} (max batch {Batch}, max queue {Queue}{Auth})", modelName, server.Url, options.MaxBatch, options.MaxQueue,
            options.ApiKey is null ? "" : ", API key required");
        return server;
    }

    /// <summary>Completes when the server is asked to stop (Ctrl+C, SIGTERM).</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Engine.Dispose();
    }

    void Map()
    {
        _app.Use(async (ctx, next) =>
        {
            ctx.Response.Headers["X-Weights-Version"] = Engine.WeightsVersion.ToString();
            try
            {
                if (_options.ApiKey is { } key && ctx.Request.Path != "/health"
                    && ctx.Request.Headers.Authorization.ToString() != "Bearer " + key)
                    throw new RequestException(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'", null, "authentication_error");
                if (HttpMethods.IsPost(ctx.Request.Method)) CheckMutatingRequest(ctx.Request);
                await next(ctx);
            }
            catch (RequestException e) { await Error(ctx, e); }
            catch (QueueFullException e)
            {
                ctx.Response.Headers.RetryAfter = _options.RetryAfterSeconds.ToString();
                await Error(ctx, new RequestException(429, $"the server is busy: {e.Message}; retry after {_options.RetryAfterSeconds} s", null, "rate_limit_error"));
            }
            catch (BadHttpRequestException e) when (e.StatusCode == 413)
            {
                await Error(ctx, new RequestException(413, $"the request body is larger than {_options.MaxRequestBytes} bytes"));
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
            {
                _log.LogDebug("{Method} {Path}: the client went away", ctx.Request.Method, ctx.Request.Path);
            }
            catch (Exception e)
            {
                // every 500 is logged with its exception; the client gets the type and message, never an empty body
                _log.LogError(e, "{Method} {Path}: internal error", ctx.Request.Method, ctx.Request.Path);
                if (!ctx.Response.HasStarted)
                    await Error(ctx, new RequestException(500, $"internal error ({e.GetType().Name}): {e.Message}", null, "internal_error"));
            }
        });
        _app.MapGet("/health", () => Results.Json(new JsonObject { ["status"] = "ok", ["weights_version"] = Engine.WeightsVersion }));
        _app.MapGet("/v1/models", () => Results.Json(new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(new JsonNode[] { new JsonObject
            {
                ["id"] = ModelName, ["object"] = "model", ["created"] = _created, ["owned_by"] = "simko",
                ["max_model_len"] = _model.Config.MaxPositionEmbeddings,
            } }.Concat(_adapters.List().Select(a => new JsonObject
            {
                ["id"] = a.Name, ["object"] = "model", ["created"] = _created, ["owned_by"] = "simko", ["root"] = a.Folder, ["parent"] = ModelName,
            })).ToArray()),
        }));
        _app.MapPost("/v1/completions", Completions);
        _app.MapPost("/v1/chat/completions", ChatCompletions);
        _app.MapPost("/update_weights_from_disk", UpdateWeights);
        _app.MapPost("/v1/load_lora_adapter", LoadAdapter);
        _app.MapPost("/v1/unload_lora_adapter", UnloadAdapter);
    }

    /// <summary>A browser page of another site can POST to a loopback server (a "simple" request with
    /// Content-Type text/plain needs no preflight): every POST must say application/json (which a
    /// cross-site page cannot send without a CORS preflight this server never grants), and one that
    /// carries an Origin other than this server's own is refused.</summary>
    static void CheckMutatingRequest(HttpRequest request)
    {
        var type = request.ContentType;
        if (type is null || !type.Split(';')[0].Trim().Equals("application/json", StringComparison.OrdinalIgnoreCase))
            throw new RequestException(415, $"header 'Content-Type' is '{type ?? "(none)"}'; POST bodies must be sent as application/json", "Content-Type");
        var origin = request.Headers.Origin.ToString();
        if (origin.Length > 0 && !(Uri.TryCreate(origin, UriKind.Absolute, out var o) && o.Authority.Equals(request.Host.Value, StringComparison.OrdinalIgnoreCase)))
            throw new RequestException(403, $"header 'Origin' is '{origin}'; cross-origin requests are refused (this server is {request.Scheme}://{request.Host})", "Origin", "permission_error");
        if (request.Headers["Sec-Fetch-Site"].ToString() is "cross-site" or "same-site")
            throw new RequestException(403, "header 'Sec-Fetch-Site' says the request comes from another site; cross-origin requests are refused", "Sec-Fetch-Site", "permission_error");
    }

    static Task Error(HttpContext ctx, RequestException e)
    {
        ctx.Response.StatusCode = e.Status;
        ctx.Response.ContentType = "application/json";
        var body = new JsonObject
        {
            ["error"] = new JsonObject { ["message"] = e.Message, ["type"] = e.Type, ["param"] = e.Param, ["code"] = e.Status },
        };
        return ctx.Response.WriteAsync(body.ToJsonString());
    }

    async Task<JsonObject> Body(HttpRequest request)
    {
        if (request.ContentLength > _options.MaxRequestBytes)
            throw new RequestException(413, $"the request body has {request.ContentLength} bytes, larger than the limit of {_options.MaxRequestBytes}");
        using var reader = new StreamReader(request.Body, Encoding.UTF8);
        string text;
        try { text = await reader.ReadToEndAsync(); }
        catch (BadHttpRequestException e) when (e.StatusCode == 413)
        {
            throw new RequestException(413, $"the request body is larger than {_options.MaxRequestBytes} bytes");
        }
        return OpenAiRequests.ParseBody(text);
    }

    /// <summary>The variant a request's <c>model</c> names: null for the base model (or no model), else a loaded adapter.</summary>
    string? CheckModel(string? model)
    {
        if (model is null || model == ModelName) return null;
        if (_adapters.IsLoaded(model)) return model;
        var served = new[] { ModelName }.Concat(_adapters.List().Select(a => a.Name)).Select(n => $"'{n}'");
        throw new RequestException(404, $"field 'model' is '{model}'; this server serves {string.Join(", ", served)}", "model", "not_found_error");
    }

    SamplingSettings Settings(SamplingFields f, IEnumerable<int> extraStops) =>
        new(f.Temperature, f.TopP, f.TopK, f.MaxTokens)
        {
            StopTokenIds = (f.IgnoreEos ? [] : extraStops.Append(_tokenizer.EosId)).Concat(f.StopTokenIds).Distinct().ToList(),
            StopStrings = f.Stop,
        };

    /// <summary>Queue prompt × n sequences (all or none) and wait for them; sample j of a prompt is seeded
    /// with <see cref="RolloutSeeds.Sample"/>(seed, j), the request's seed or a random one.</summary>
    async Task<SequenceResult[]> Run(IReadOnlyList<int[]> prompts, SamplingSettings settings, SamplingFields f, bool promptLogProbs, CancellationToken aborted, string? adapter = null)
    {
        var jobs = new List<SequenceJob>();
        foreach (var p in prompts)
        {
            long seed = f.Seed ?? Random.Shared.NextInt64(0, 0x7FFFFFFF);
            for (int j = 0; j < f.N; j++) jobs.Add(new SequenceJob(p, settings, RolloutSeeds.Sample(seed, j), promptLogProbs) { Cancellation = aborted });
        }
        if (jobs.Count > Engine.MaxQueue)
            throw new RequestException(400, $"field 'n': {prompts.Count} prompt(s) × n = {f.N} asks for {jobs.Count} sequences; this server's queue holds at most {Engine.MaxQueue} (--max-queue), so the request can never be queued", "n");
        // the variant stays attached until this request's sequences are done
        IDisposable lease;
        try { lease = await _adapters.Enter(adapter); }
        catch (KeyNotFoundException e) { throw new RequestException(404, e.Message, "model", "not_found_error"); }
        using var _ = lease;
        IReadOnlyList<Task<SequenceResult>> tasks;
        try { tasks = Engine.SubmitAll(jobs); }
        catch (ArgumentException e) { throw new RequestException(400, e.Message); }
        try { return await Task.WhenAll(tasks); }
        catch (SequenceFaultException e)
        {
            _log.LogError(e, "a request's sequence failed on its own");
            throw new RequestException(500, $"this request failed (the others go on): {e.Message}", null, "internal_error");
        }
    }

    async Task Completions(HttpContext ctx)
    {
        var o = await Body(ctx.Request);
        var r = OpenAiRequests.Completion(o, _limits, _tokenizer.Encode, _model.Config.VocabSize);
        var adapter = CheckModel(r.Model);
        var settings = Settings(r.Sampling, []);
        bool wantPrompt = r.Echo && r.Logprobs is not null;
        var results = await Run(r.Prompts.Select(p => p.Ids).ToList(), settings, r.Sampling, wantPrompt, ctx.RequestAborted, adapter);
        var choices = new JsonArray();
        int promptTokens = 0, completionTokens = 0;
        for (int i = 0; i < r.Prompts.Count; i++)
        {
            var (ptext, pids) = r.Prompts[i];
            promptTokens += pids.Length;
            for (int j = 0; j < r.Sampling.N; j++)
            {
                var res = results[i * r.Sampling.N + j];
                completionTokens += res.Tokens.Length;
                var text = Text(res, settings);
                var choice = new JsonObject
                {
                    ["index"] = i * r.Sampling.N + j,
                    ["text"] = r.Echo ? (ptext ?? Decode(pids)) + text : text,
                    ["logprobs"] = r.Logprobs is null ? null : CompletionLogprobs(r.Echo ? pids : [], res.PromptLogProbs, res, r.TokensAsIds, r.Logprobs.Value),
                    ["finish_reason"] = res.Finish == FinishReason.Stop ? "stop" : "length",
                    ["stop_reason"] = StopReason(res, r.Sampling),
                };
                choices.Add(choice);
            }
        }
        await ctx.Response.WriteAsJsonAsync(new JsonObject
        {
            ["id"] = "cmpl-" + Guid.NewGuid().ToString("N"),
            ["object"] = "text_completion",
            ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["model"] = ModelName,
            ["choices"] = choices,
            ["usage"] = Usage(promptTokens, completionTokens),
            ["weights_version"] = results.Length == 0 ? Engine.WeightsVersion : results.Min(x => x.WeightsVersion),
        });
    }

    async Task ChatCompletions(HttpContext ctx)
    {
        var o = await Body(ctx.Request);
        var r = OpenAiRequests.Chat(o, _limits);
        var adapter = CheckModel(r.Model);
        if (_chat.Unsupported is { } why) throw new RequestException(400, $"chat is not available for this model: {why}");
        string prompt;
        try { prompt = await Task.Run(() => _chat.Render(r.Messages)); }
        catch (SimKO.Data.Chat.ChatTemplateException e) { throw new RequestException(400, e.Message, "messages"); }
        var ids = _tokenizer.Encode(prompt);
        if (ids.Length > _limits.MaxPromptTokens)
            throw new RequestException(400, $"field 'messages' renders to {ids.Length} tokens; this server takes at most {_limits.MaxPromptTokens} prompt tokens", "messages");
        int maxTokens = System.Math.Min(r.Sampling.MaxTokens, _limits.MaxContext - ids.Length);
        var fields = r.Sampling with { MaxTokens = maxTokens };
        var settings = Settings(fields, _chat.StopTokenIds);
        var results = await Run([ids], settings, fields, false, ctx.RequestAborted, adapter);
        var choices = new JsonArray();
        for (int j = 0; j < results.Length; j++)
        {
            var res = results[j];
            JsonNode? logprobs = null;
            if (r.Logprobs)
            {
                var content = new JsonArray();
                for (int t = 0; t < res.Tokens.Length; t++)
                {
                    var tok = TokenText(res.Tokens[t], r.TokensAsIds);
                    content.Add(new JsonObject
                    {
                        ["token"] = tok, ["logprob"] = res.LogProbs[t],
                        ["bytes"] = new JsonArray(Encoding.UTF8.GetBytes(tok).Select(b => (JsonNode)(int)b).ToArray()),
                        ["top_logprobs"] = new JsonArray(),
                    });
                }
                logprobs = new JsonObject { ["content"] = content };
            }
            choices.Add(new JsonObject
            {
                ["index"] = j,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = Text(res, settings) },
                ["logprobs"] = logprobs,
                ["finish_reason"] = res.Finish == FinishReason.Stop ? "stop" : "length",
                ["stop_reason"] = StopReason(res, fields),
            });
        }
        await ctx.Response.WriteAsJsonAsync(new JsonObject
        {
            ["id"] = "chatcmpl-" + Guid.NewGuid().ToString("N"),
            ["object"] = "chat.completion",
            ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["model"] = ModelName,
            ["choices"] = choices,
            ["usage"] = Usage(ids.Length, results.Sum(x => x.Tokens.Length)),
            ["weights_version"] = results.Min(x => x.WeightsVersion),
        });
    }

    /// <summary>SGLang's route: <c>{"model_path": folder}</c>; the weights are read here, swapped on the
    /// engine thread once no sequence is in flight, and the new version returned.</summary>
    async Task UpdateWeights(HttpContext ctx)
    {
        var o = await Body(ctx.Request);
        if (o["model_path"] is not JsonValue v || !v.TryGetValue<string>(out var path) || path.Length == 0)
            throw new RequestException(400, "field 'model_path' is missing or not a string (an HF folder with model.safetensors)", "model_path");
        var clock = Stopwatch.StartNew();
        Dictionary<string, TorchSharp.torch.Tensor> tensors;
        try
        {
            var config = ModelConfig.Load(Path.Combine(path, HfFolder.Config));
            if (config with { EosTokenId = _model.Config.EosTokenId, BosTokenId = _model.Config.BosTokenId } != _model.Config with { })
                throw new InvalidDataException($"{Path.Combine(path, HfFolder.Config)} describes another architecture than the served model");
            tensors = HfFolder.ReadWeights(path);
            try { HfFolder.CheckFinite(tensors, path); }
            catch { foreach (var t in tensors.Values) t.Dispose(); throw; }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or JsonException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
        {
            await Reply(ctx, 400, false, $"model_path '{path}': {e.Message}");
            return;
        }
        long version;
        try
        {
            version = await Engine.SwapWeights(m => HfFolder.LoadInto(m, tensors, path));
        }
        catch (InvalidDataException e)
        {
            await Reply(ctx, 400, false, e.Message);
            return;
        }
        finally { foreach (var t in tensors.Values) t.Dispose(); }
        _log.LogInformation("weights version {Version} from {Path} ({Ms:F0} ms)", version, path, clock.Elapsed.TotalMilliseconds);
        ctx.Response.Headers["X-Weights-Version"] = version.ToString();
        await Reply(ctx, 200, true, $"loaded {path}", version);
    }

    /// <summary>vLLM's route: <c>{"lora_name", "lora_path"}</c>, a PEFT folder of an adapter of the served model. The adapter
    /// is read and checked (a malformed one is a 400 naming the file and tensor, and nothing changes), registered under its
    /// name and attached; requests then select it with <c>"model": lora_name</c>. The answer carries the weights version.</summary>
    async Task LoadAdapter(HttpContext ctx)
    {
        var o = await Body(ctx.Request);
        var name = StringField(o, "lora_name", "the name requests will give as 'model'");
        var path = StringField(o, "lora_path", "a PEFT adapter folder with adapter_config.json and adapter_model.safetensors");
        if (name == ModelName) throw new RequestException(400, $"field 'lora_name' is '{name}', the base model's name; give the adapter another name", "lora_name");
        var clock = Stopwatch.StartNew();
        long version;
        try { version = await _adapters.Load(name, path, _model); }
        catch (InvalidOperationException e) { throw new RequestException(400, e.Message, "lora_name"); }
        catch (Exception e) when (e is IOException or InvalidDataException or JsonException or UnauthorizedAccessException or ArgumentException)
        {
            throw new RequestException(400, $"lora_path '{path}': {e.Message}", "lora_path");
        }
        _log.LogInformation("adapter {Name} from {Path}: weights version {Version} ({Ms:F0} ms)", name, path, version, clock.Elapsed.TotalMilliseconds);
        ctx.Response.Headers["X-Weights-Version"] = version.ToString();
        await ctx.Response.WriteAsJsonAsync(new JsonObject
        {
            ["success"] = true, ["message"] = $"Success: LoRA adapter '{name}' added successfully.", ["weights_version"] = version,
        });
    }

    /// <summary>vLLM's route: <c>{"lora_name"}</c>; an unknown name is a 404. Requests of the adapter in flight finish with it.</summary>
    async Task UnloadAdapter(HttpContext ctx)
    {
        var o = await Body(ctx.Request);
        var name = StringField(o, "lora_name", "the name the adapter was loaded under");
        if (!_adapters.Unload(name))
            throw new RequestException(404, $"field 'lora_name': no adapter '{name}' is loaded (loaded: {string.Join(", ", _adapters.List().Select(a => $"'{a.Name}'"))})", "lora_name", "not_found_error");
        _log.LogInformation("adapter {Name} unloaded", name);
        await ctx.Response.WriteAsJsonAsync(new JsonObject { ["success"] = true, ["message"] = $"Success: LoRA adapter '{name}' removed successfully." });
    }

    static string StringField(JsonObject o, string field, string what) =>
        o[field] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0 ? s
        : throw new RequestException(400, $"field '{field}' is missing or not a non-empty string ({what})", field);

    static Task Reply(HttpContext ctx, int status, bool success, string message, long? version = null)
    {
        ctx.Response.StatusCode = status;
        var body = new JsonObject { ["success"] = success, ["message"] = message, ["num_paused_requests"] = 0 };
        if (version is long v) body["weights_version"] = v;
        if (!success) body["error"] = new JsonObject { ["message"] = message, ["type"] = "invalid_request_error", ["param"] = "model_path", ["code"] = status };
        return ctx.Response.WriteAsJsonAsync(body);
    }

    static JsonObject Usage(int prompt, int completion) =>
        new() { ["prompt_tokens"] = prompt, ["completion_tokens"] = completion, ["total_tokens"] = prompt + completion };

    /// <summary>vLLM's stop_reason: the stop string, or the id of a stop token the request named (null for EOS or length).</summary>
    static JsonNode? StopReason(SequenceResult res, SamplingFields f) =>
        res.StopString is { } s ? s
        : res.Finish == FinishReason.Stop && res.Tokens.Length > 0 && f.StopTokenIds.Contains(res.Tokens[^1]) ? res.Tokens[^1]
        : null;

    /// <summary>The completion text: without a final stop token, cut before a stop string (vLLM's defaults).</summary>
    string Text(SequenceResult res, SamplingSettings s)
    {
        IEnumerable<int> ids = res.Tokens;
        if (res.Finish == FinishReason.Stop && res.StopString is null && res.Tokens.Length > 0 && s.StopTokenIds.Contains(res.Tokens[^1]))
            ids = res.Tokens[..^1];
        var text = Decode(ids);
        if (res.StopString is { } stop && text.EndsWith(stop, StringComparison.Ordinal)) text = text[..^stop.Length];
        return text;
    }

    string TokenText(int id, bool asIds) => asIds ? $"token_id:{id}" : Decode([id]);

    /// <summary>Text of ids; ids the tokenizer lacks (a real model's vocabulary is padded past the
    /// tokenizer's, e.g. Qwen's 151,936 rows for 151,665 tokens) decode to nothing, as in vLLM.</summary>
    string Decode(IEnumerable<int> ids) => _tokenizer.Decode(ids.Where(i => i >= 0 && i < _tokenizer.VocabSize));

    /// <summary>The legacy completions logprobs object: tokens, token_logprobs, top_logprobs, text_offset
    /// (echoed prompt tokens first, the first one's log-prob null). top_logprobs lists the sampled token only.</summary>
    JsonObject CompletionLogprobs(int[] echoed, float?[]? promptLogProbs, SequenceResult res, bool asIds, int top)
    {
        var tokens = new JsonArray();
        var logps = new JsonArray();
        var tops = new JsonArray();
        var offsets = new JsonArray();
        int offset = 0;
        void Add(int id, float? lp)
        {
            var text = TokenText(id, asIds);
            tokens.Add(text);
            logps.Add(lp);
            tops.Add(lp is null || top == 0 ? null : new JsonObject { [text] = lp.Value });
            offsets.Add(offset);
            offset += asIds ? 0 : text.Length;
        }
        for (int t = 0; t < echoed.Length; t++) Add(echoed[t], promptLogProbs?[t]);
        for (int t = 0; t < res.Tokens.Length; t++) Add(res.Tokens[t], res.LogProbs[t]);
        return new JsonObject { ["tokens"] = tokens, ["token_logprobs"] = logps, ["top_logprobs"] = tops, ["text_offset"] = offsets };
    }
}
