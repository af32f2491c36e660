using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace SimKO.Host.Rollout;

/// <summary>Which inference server a rollout URL points at (they differ in routes and shapes).</summary>
public enum RolloutServer { Vllm, Sglang, Simko }

/// <summary>How the trainer reaches an inference server.</summary>
/// <param name="Url">Base address, e.g. http://10.0.0.5:8000 (no /v1).</param>
public sealed record RolloutClientOptions(string Url, RolloutServer Server)
{
    public string? ApiKey { get; init; }
    /// <summary>Most HTTP requests in flight (one request = one prompt's group).</summary>
    public int Concurrency { get; init; } = 64;
    /// <summary>Seconds one request may take before it counts as failed (then retried).</summary>
    public double TimeoutSeconds { get; init; } = 600;
    /// <summary>Retries after a connection error, a timeout, a 5xx or a 429 (with exponential backoff).</summary>
    public int Retries { get; init; } = 3;
    public double BackoffSeconds { get; init; } = 0.5;
    /// <summary>The served model id; null asks GET /v1/models once (vLLM, simko) or sends none (SGLang).</summary>
    public string? Model { get; init; }
    /// <summary>vLLM's reload route (<c>VLLM_SERVER_DEV_MODE=1</c>): <c>POST /collective_rpc</c> with
    /// <c>{"method": "reload_weights", "kwargs": {"weights_path": folder, "is_checkpoint_format": true}}</c>.</summary>
    public string VllmReloadRoute { get; init; } = "/collective_rpc";
    /// <summary>vLLM's prefix-cache reset (dev mode), called after every reload: V1 caches prefixes by default and
    /// <c>reload_weights</c> keeps them, so shared prompt prefixes would reuse KV of the old weights.</summary>
    public string VllmResetPrefixCacheRoute { get; init; } = "/reset_prefix_cache";
}

/// <summary>The server's answer had the wrong shape, or the server refused; the message names the URL.</summary>
public sealed class RolloutServerException(string message, Exception? inner = null) : InvalidOperationException(message, inner);

/// <summary>
/// The rollout seam over HTTP (SPEC §8): one request per prompt with token-id prompts, n = the group
/// size and a per-prompt seed (<see cref="RolloutSeeds.Prompt"/>), asking for per-token log-probs and
/// token ids. vLLM and <c>simko serve</c>: <c>POST /v1/completions</c> with
/// <c>return_tokens_as_token_ids</c> and <c>logprobs</c> (ids parsed from the "token_id:N" strings).
/// SGLang: its native <c>POST /generate</c>, the route that takes <c>input_ids</c> and returns
/// <c>output_ids</c> with <c>meta_info.output_token_logprobs</c> as (logprob, id, text) triples; the
/// group is sent as n copies of the prompt with per-sample <c>sampling_seed</c>s (SGLang's radix cache
/// shares the prefix). Bounded concurrency, timeouts, retries with backoff on connection errors, 429 and
/// 5xx; any other failure or a wrong-shaped answer is an error naming the URL. An answer whose finish reason is
/// neither stop nor length (vLLM's <c>abort</c>, SGLang's <c>{"type": "abort"}</c>, which SGLang's
/// tokenizer_manager returns as 200 unless the abort carries a 400/500/503 status) is retried like a 5xx and fails
/// the step, naming the request, when the retries run out. Every response is cut after its first stop token,
/// whatever the server returned.
/// </summary>
public sealed class ServerRolloutClient : IRolloutEngine, IDisposable
{
    readonly RolloutClientOptions _o;
    readonly HttpClient _http;
    readonly SemaphoreSlim _slots;
    string? _model;

    public RolloutClientOptions Options => _o;

    /// <summary>The LoRA adapter requests select (null: the base model): vLLM and simko take it as the request's
    /// <c>model</c> (vLLM's OpenAIServing._maybe_get_adapters, vllm/entrypoints/openai/engine/serving.py, looks
    /// <c>request.model</c> up among the loaded adapters), SGLang's /generate as <c>lora_path</c> (its TokenizerManager
    /// resolves that name in its LoRA registry, python/sglang/srt/managers/tokenizer_manager.py).</summary>
    public string? Adapter { get; private set; }

    /// <summary>Requests from now on select <paramref name="name"/> (a loaded adapter), or the base model when null.</summary>
    public void UseAdapter(string? name) => Adapter = name;

    public ServerRolloutClient(RolloutClientOptions options, HttpMessageHandler? handler = null)
    {
        if (!Uri.TryCreate(options.Url, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            throw new ArgumentException($"rollout_url '{options.Url}' is not an http(s) URL such as http://127.0.0.1:8000");
        if (options.Concurrency < 1) throw new ArgumentException($"rollout_concurrency is {options.Concurrency}; expected at least 1");
        if (options.Retries < 0) throw new ArgumentException($"rollout_retries is {options.Retries}; expected at least 0");
        if (!(options.TimeoutSeconds > 0)) throw new ArgumentException($"rollout_timeout_s is {options.TimeoutSeconds}; expected > 0");
        _o = options with { Url = options.Url.TrimEnd('/') };
        _http = new HttpClient(handler ?? new SocketsHttpHandler { MaxConnectionsPerServer = options.Concurrency }, disposeHandler: true)
        { Timeout = Timeout.InfiniteTimeSpan };
        if (options.ApiKey is { Length: > 0 } key) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        _slots = new SemaphoreSlim(options.Concurrency);
        _model = options.Model;
    }

    public void Dispose() { _http.Dispose(); _slots.Dispose(); }

    public IReadOnlyList<Generated> Generate(GenerateRequest r) => GenerateAsync(r).GetAwaiter().GetResult();

    public async Task<IReadOnlyList<Generated>> GenerateAsync(GenerateRequest r)
    {
        if (r.Prompts.Count == 0) return [];
        if (_o.Server != RolloutServer.Sglang && Adapter is null) await EnsureModel();
        var groups = await Task.WhenAll(r.Prompts.Select((p, i) => OneGroup(r, i)));
        return groups.SelectMany((g, i) => g.Select(x => new Generated(i, x.Tokens, x.LogProbs))).ToList();
    }

    async Task<List<(int[] Tokens, float[] LogProbs)>> OneGroup(GenerateRequest r, int index)
    {
        // the step-wide index (PromptIndexBase): the same stream the in-process engines give this prompt, whichever
        // mini-batch or rank asks for it
        var seed = RolloutSeeds.Prompt(r.Seed, r.PromptIndexBase + index);
        bool sglang = _o.Server == RolloutServer.Sglang;
        var url = _o.Url + (sglang ? "/generate" : "/v1/completions");
        var body = sglang ? SglangGenerateBody(r.Prompts[index], r, seed, Adapter) : CompletionBody(Adapter ?? _model, r.Prompts[index], r, seed);
        for (int attempt = 0; ; attempt++)
        {
            var answer = await Post(url, body);
            var unfinished = sglang ? SglangUnfinished(answer) : CompletionUnfinished(answer);
            if (unfinished is null)
            {
                var parsed = sglang ? ParseSglangGenerate(answer, r.SamplesPerPrompt, url) : ParseCompletion(answer, r.SamplesPerPrompt, url);
                return parsed.Select(x => CutAtFirstStop(x.Tokens, x.LogProbs, r.StopTokenIds)).ToList();
            }
            if (attempt >= _o.Retries)
                throw new RolloutServerException(
                    $"{url}: the request for prompt {index} of the batch (seed {seed}, n = {r.SamplesPerPrompt}) came back unfinished " +
                    $"after {attempt + 1} attempt{(attempt == 0 ? "" : "s")}: {unfinished}; its partial responses are not trained on");
            await Task.Delay(TimeSpan.FromSeconds(_o.BackoffSeconds * System.Math.Pow(2, attempt)));
        }
    }

    /// <summary>The response up to and including its first stop token (all of it when it has none): a server
    /// that ran past a stop token must not hand the trainer text past the end.</summary>
    public static (int[] Tokens, float[] LogProbs) CutAtFirstStop(int[] tokens, float[] logProbs, IReadOnlyList<int> stopTokenIds)
    {
        if (stopTokenIds.Count == 0) return (tokens, logProbs);
        int end = Array.FindIndex(tokens, t => stopTokenIds.Contains(t));
        return end < 0 || end == tokens.Length - 1 ? (tokens, logProbs) : (tokens[..(end + 1)], logProbs[..(end + 1)]);
    }

    /// <summary>Why a completions answer is not a finished sampling of every choice ("choices[k] finished 'abort'"),
    /// or null when every choice stopped or reached its length. vLLM's finish reasons are stop, length, abort, error
    /// and repetition (vllm/v1/engine/__init__.py, FINISH_REASON_STRINGS); only the first two are complete.</summary>
    public static string? CompletionUnfinished(JsonNode answer)
    {
        if (answer["choices"] is not JsonArray choices) return null;   // the parser names the shape error
        for (int k = 0; k < choices.Count; k++)
        {
            var reason = choices[k]?["finish_reason"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
            if (reason is not ("stop" or "length"))
                return $"choices[{k}].finish_reason is {(reason is null ? "missing" : $"'{reason}'")} (expected 'stop' or 'length')";
        }
        return null;
    }

    /// <summary>Why an SGLang /generate answer is not finished (meta_info.finish_reason.type other than stop or
    /// length, e.g. an abort without an error status, or the scheduler's "NaN happened" stop), or null.</summary>
    public static string? SglangUnfinished(JsonNode answer)
    {
        var items = answer as JsonArray ?? (answer is JsonObject ? new JsonArray(answer.DeepClone()) : null);
        if (items is null) return null;
        for (int k = 0; k < items.Count; k++)
        {
            var reason = items[k]?["meta_info"]?["finish_reason"];
            if (reason is null && items[k]?["meta_info"] is null) return null;   // the parser names the shape error
            var type = reason?["type"] is JsonValue tv && tv.TryGetValue<string>(out var t) ? t : null;
            var matched = reason?["matched"] is JsonValue mv && mv.TryGetValue<string>(out var m) ? m : null;
            if (type is not ("stop" or "length") || matched == "NaN happened")
                return $"[{k}].meta_info.finish_reason is {reason?.ToJsonString() ?? "missing"} (expected type 'stop' or 'length')";
        }
        return null;
    }

    async Task EnsureModel()
    {
        if (_model is not null) return;
        var url = _o.Url + "/v1/models";
        var node = await Send(() => new HttpRequestMessage(HttpMethod.Get, url), url);
        _model = (node["data"] as JsonArray)?.FirstOrDefault()?["id"]?.GetValue<string>()
            ?? throw new RolloutServerException($"{url}: the answer has no data[0].id (expected the OpenAI model list)");
    }

    // ------------------------------------------------------------------ request and response shapes

    /// <summary>vLLM / simko <c>POST /v1/completions</c> body for one prompt's group.</summary>
    public static JsonObject CompletionBody(string? model, int[] prompt, GenerateRequest r, long seed)
    {
        var body = new JsonObject
        {
            ["prompt"] = Ints(prompt),
            ["n"] = r.SamplesPerPrompt,
            ["max_tokens"] = r.MaxNewTokens,
            ["temperature"] = r.Temperature,
            ["top_p"] = r.TopP,
            ["top_k"] = r.TopK > 0 ? r.TopK : -1,
            ["seed"] = seed,
            ["logprobs"] = 1,
            ["return_tokens_as_token_ids"] = true,
            ["include_stop_str_in_output"] = true,
            ["skip_special_tokens"] = false,
            // the trainer names every stop token itself (EOS included), as in-process sampling does; vLLM's
            // check_stop (vllm/v1/core/sched/utils.py) tests stop_token_ids whatever ignore_eos says
            ["ignore_eos"] = true,
            ["stop_token_ids"] = Ints(r.StopTokenIds),
        };
        AddNeutralPenalties(body);
        if (model is not null) body["model"] = model;
        if (r.StopStrings.Count > 0) body["stop"] = new JsonArray(r.StopStrings.Select(s => (JsonNode)s).ToArray());
        return body;
    }

    /// <summary>Parses a completions answer: n choices, each with logprobs.tokens ("token_id:N") and token_logprobs.</summary>
    public static List<(int[] Tokens, float[] LogProbs)> ParseCompletion(JsonNode answer, int n, string url)
    {
        var choices = answer["choices"] as JsonArray ?? throw Shape(url, "no 'choices' array");
        if (choices.Count != n) throw Shape(url, $"{choices.Count} choices, expected n = {n}");
        var result = new (int[], float[])[n];
        var seen = new bool[n];
        for (int k = 0; k < n; k++)
        {
            var c = choices[k] as JsonObject ?? throw Shape(url, $"choices[{k}] is not an object");
            int index = c["index"] is JsonValue iv && iv.TryGetValue<int>(out var ix) ? ix : k;
            if (index < 0 || index >= n || seen[index]) throw Shape(url, $"choices[{k}].index is {index}, expected a distinct index in [0, {n})");
            seen[index] = true;
            var lp = c["logprobs"] as JsonObject ?? throw Shape(url, $"choices[{k}].logprobs is missing (the server must support logprobs)");
            var tokens = lp["tokens"] as JsonArray ?? throw Shape(url, $"choices[{k}].logprobs.tokens is missing");
            var logps = lp["token_logprobs"] as JsonArray ?? throw Shape(url, $"choices[{k}].logprobs.token_logprobs is missing");
            if (tokens.Count != logps.Count) throw Shape(url, $"choices[{k}]: {tokens.Count} tokens but {logps.Count} token_logprobs");
            var ids = new int[tokens.Count];
            var values = new float[tokens.Count];
            for (int t = 0; t < tokens.Count; t++)
            {
                var s = tokens[t] is JsonValue tv && tv.TryGetValue<string>(out var str) ? str : null;
                if (s is null || !s.StartsWith("token_id:", StringComparison.Ordinal) || !int.TryParse(s.AsSpan(9), NumberStyles.Integer, CultureInfo.InvariantCulture, out ids[t]))
                    throw Shape(url, $"choices[{k}].logprobs.tokens[{t}] is {tokens[t]?.ToJsonString() ?? "null"}, expected \"token_id:N\" (start vLLM with return_tokens_as_token_ids support)");
                values[t] = logps[t] is JsonValue lv && lv.TryGetValue<double>(out var d) ? (float)d
                    : throw Shape(url, $"choices[{k}].logprobs.token_logprobs[{t}] is not a number");
            }
            result[index] = (ids, values);
        }
        return result.ToList();
    }

    /// <summary>SGLang <c>POST /generate</c> body: n copies of the prompt, each with its own sampling_seed; with
    /// <paramref name="loraPath"/>, the loaded adapter of that name samples all of them (GenerateReqInput.lora_path,
    /// a single name for the whole batch: python/sglang/srt/managers/io_struct.py).</summary>
    public static JsonObject SglangGenerateBody(int[] prompt, GenerateRequest r, long seed, string? loraPath = null)
    {
        var ids = new JsonArray();
        var sampling = new JsonArray();
        for (int j = 0; j < r.SamplesPerPrompt; j++)
        {
            ids.Add(Ints(prompt));
            var s = new JsonObject
            {
                ["max_new_tokens"] = r.MaxNewTokens,
                ["temperature"] = r.Temperature,
                ["top_p"] = r.TopP,
                ["top_k"] = r.TopK > 0 ? r.TopK : -1,
                ["stop_token_ids"] = Ints(r.StopTokenIds),
                ["skip_special_tokens"] = false,
                ["no_stop_trim"] = true,
                // not ignore_eos: SGLang's Req.check_finished (python/sglang/srt/managers/schedule_batch.py) skips
                // stop_token_ids too when ignore_eos is set, so every response would run to max_new_tokens
                ["ignore_eos"] = false,
                ["sampling_seed"] = RolloutSeeds.Sample(seed, j) & 0x7FFFFFFF,
            };
            AddNeutralPenalties(s);
            if (r.StopStrings.Count > 0) s["stop"] = new JsonArray(r.StopStrings.Select(x => (JsonNode)x).ToArray());
            sampling.Add(s);
        }
        var body = new JsonObject { ["input_ids"] = ids, ["sampling_params"] = sampling, ["return_logprob"] = true };
        if (loraPath is not null) body["lora_path"] = loraPath;
        return body;
    }

    /// <summary>Parses SGLang's /generate answer: a list of n objects with output_ids and
    /// meta_info.output_token_logprobs [[logprob, id, text|null], …].</summary>
    public static List<(int[] Tokens, float[] LogProbs)> ParseSglangGenerate(JsonNode answer, int n, string url)
    {
        var items = answer as JsonArray ?? (n == 1 && answer is JsonObject ? new JsonArray(answer.DeepClone()) : throw Shape(url, "expected a list of results (one per input)"));
        if (items.Count != n) throw Shape(url, $"{items.Count} results, expected {n}");
        var result = new List<(int[], float[])>(n);
        for (int k = 0; k < n; k++)
        {
            var meta = items[k]?["meta_info"] as JsonObject ?? throw Shape(url, $"[{k}].meta_info is missing");
            var lps = meta["output_token_logprobs"] as JsonArray ?? throw Shape(url, $"[{k}].meta_info.output_token_logprobs is missing (send return_logprob: true)");
            var ids = new int[lps.Count];
            var values = new float[lps.Count];
            for (int t = 0; t < lps.Count; t++)
            {
                if (lps[t] is not JsonArray triple || triple.Count < 2
                    || triple[0] is not JsonValue lv || !lv.TryGetValue<double>(out var lp)
                    || triple[1] is not JsonValue iv || !iv.TryGetValue<int>(out var id))
                    throw Shape(url, $"[{k}].meta_info.output_token_logprobs[{t}] is {lps[t]?.ToJsonString() ?? "null"}, expected [logprob, token_id, text]");
                ids[t] = id; values[t] = (float)lp;
            }
            if (items[k]?["output_ids"] is JsonArray outIds
                && !outIds.Select(x => x is JsonValue v && v.TryGetValue<int>(out var i) ? i : -1).SequenceEqual(ids))
                throw Shape(url, $"[{k}].output_ids disagree with the ids in meta_info.output_token_logprobs");
            result.Add((ids, values));
        }
        return result;
    }

    /// <summary>Penalties off and min_p 0, so the server samples the distribution the trainer's log-probs assume.
    /// Both servers otherwise fill unset fields from the model's generation_config.json (vLLM:
    /// CompletionRequest.to_sampling_params, user → server default → OpenAI default, in
    /// vllm/entrypoints/openai/completion/protocol.py; SGLang: ModelConfig.get_default_sampling_params). The
    /// field names are both servers' SamplingParams (vllm/sampling_params.py, python/sglang/srt/sampling/sampling_params.py).</summary>
    static void AddNeutralPenalties(JsonObject sampling)
    {
        sampling["repetition_penalty"] = 1.0;
        sampling["presence_penalty"] = 0.0;
        sampling["frequency_penalty"] = 0.0;
        sampling["min_p"] = 0.0;
    }

    static JsonArray Ints(IEnumerable<int> xs) => new(xs.Select(x => (JsonNode)x).ToArray());

    static RolloutServerException Shape(string url, string what) => new($"{url}: unexpected answer: {what}");

    // ------------------------------------------------------------------ weights and the probe

    /// <summary>Tell the server to load the HF folder <paramref name="folder"/> (a path the server can
    /// read); returns the server's weights version when it reports one (simko), else null.</summary>
    public long? LoadWeights(string folder)
    {
        var full = Path.GetFullPath(folder);
        string url;
        JsonObject body;
        if (_o.Server == RolloutServer.Vllm)
        {
            url = _o.Url + _o.VllmReloadRoute;
            body = new JsonObject { ["method"] = "reload_weights", ["kwargs"] = new JsonObject { ["weights_path"] = full, ["is_checkpoint_format"] = true } };
        }
        else
        {
            url = _o.Url + "/update_weights_from_disk";
            body = new JsonObject { ["model_path"] = full };
        }
        var answer = Post(url, body).GetAwaiter().GetResult();
        if (_o.Server == RolloutServer.Vllm) ResetPrefixCache();
        if (_o.Server != RolloutServer.Vllm && answer["success"] is JsonValue ok && ok.TryGetValue<bool>(out var success) && !success)
            throw new RolloutServerException($"{url}: the server did not load {full}: {answer["message"]?.ToJsonString()}");
        return answer["weights_version"] is JsonValue v && v.TryGetValue<long>(out var version) ? version : null;
    }

    /// <summary>Load the PEFT adapter folder <paramref name="folder"/> (a path the server can read) under
    /// <paramref name="name"/>: vLLM and simko <c>POST /v1/load_lora_adapter</c>, SGLang <c>POST /load_lora_adapter</c>, both
    /// with <c>{"lora_name", "lora_path"}</c> (vLLM: LoadLoRAAdapterRequest, vllm/entrypoints/openai/models/serving.py,
    /// answering a plain-text "Success: …"; SGLang: LoadLoRAAdapterReqInput, python/sglang/srt/managers/io_struct.py, answering
    /// <c>{"success", "error_message", "loaded_adapters"}</c>). vLLM needs <c>--enable-lora --max-lora-rank R</c> and
    /// <c>VLLM_ALLOW_RUNTIME_LORA_UPDATING=True</c>, SGLang <c>--enable-lora</c>. No prefix-cache reset is needed: both servers
    /// key cached prefixes by the adapter (vLLM: _gen_lora_extra_hash_keys in vllm/v1/core/kv_cache_utils.py), and every
    /// sync loads under a new name. Returns the server's weights version when it reports one (simko), else null.</summary>
    public long? LoadAdapter(string name, string folder)
    {
        var full = Path.GetFullPath(folder);
        var url = _o.Url + (_o.Server == RolloutServer.Sglang ? "/load_lora_adapter" : "/v1/load_lora_adapter");
        var answer = Post(url, new JsonObject { ["lora_name"] = name, ["lora_path"] = full }, textIsSuccess: true).GetAwaiter().GetResult();
        if (answer["success"] is JsonValue ok && ok.TryGetValue<bool>(out var success) && !success)
            throw new RolloutServerException($"{url}: the server did not load the adapter {full} as '{name}': {Clip((answer["error_message"] ?? answer["message"])?.ToJsonString() ?? "")}");
        return answer["weights_version"] is JsonValue v && v.TryGetValue<long>(out var version) ? version : null;
    }

    /// <summary>Unload the adapter loaded as <paramref name="name"/>: vLLM and simko <c>POST /v1/unload_lora_adapter</c>,
    /// SGLang <c>POST /unload_lora_adapter</c>, with <c>{"lora_name"}</c>; requests that selected it select the base model again.</summary>
    public void UnloadAdapter(string name)
    {
        var url = _o.Url + (_o.Server == RolloutServer.Sglang ? "/unload_lora_adapter" : "/v1/unload_lora_adapter");
        var answer = Post(url, new JsonObject { ["lora_name"] = name }, textIsSuccess: true).GetAwaiter().GetResult();
        if (answer["success"] is JsonValue ok && ok.TryGetValue<bool>(out var success) && !success)
            throw new RolloutServerException($"{url}: the server did not unload the adapter '{name}': {Clip((answer["error_message"] ?? answer["message"])?.ToJsonString() ?? "")}");
        if (Adapter == name) Adapter = null;
    }

    /// <summary>vLLM: <c>POST /reset_prefix_cache</c>. Its route (vllm/entrypoints/serve/dev/cache/api_router.py) answers
    /// an empty 200; a JSON body saying <c>false</c> or <c>{"success": false}</c> is a refusal.</summary>
    void ResetPrefixCache()
    {
        var url = _o.Url + _o.VllmResetPrefixCacheRoute;
        var answer = Send(() => new HttpRequestMessage(HttpMethod.Post, url), url, emptyIsSuccess: true).GetAwaiter().GetResult();
        bool refused = answer is JsonValue b && b.TryGetValue<bool>(out var ok) && !ok
            || answer["success"] is JsonValue sv && sv.TryGetValue<bool>(out var success) && !success;
        if (refused)
            throw new RolloutServerException($"{url}: the server did not reset its prefix cache after the reload ({Clip(answer.ToJsonString())}); " +
                "cached prefixes would keep the old weights' KV");
    }

    /// <summary>One seeded completion of <paramref name="prefix"/> at temperature 1 with no filtering: its tokens and
    /// the server's log-prob of each. The stale-weight probe sends the same prefix after every reload, so the server
    /// has it cached from the previous weights; vLLM skips its prefix cache only for prompt log-prob requests
    /// (SamplingParams.skip_reading_prefix_cache, vllm/sampling_params.py), so only generated tokens can show stale KV.</summary>
    public Generated ProbeCompletion(int[] prefix, int newTokens, long seed) =>
        Generate(new GenerateRequest([prefix], 1, 1.0, 1.0, 0, newTokens, seed)).Single();

    /// <summary>The server's log p(ids[t] | ids[:t]) for t ≥ 1 at temperature 1 (echo + logprobs on
    /// /v1/completions; SGLang: /generate with logprob_start_len 0 → input_token_logprobs).</summary>
    public float[] ServerLogProbs(int[] ids)
    {
        if (_o.Server == RolloutServer.Sglang)
        {
            var url = _o.Url + "/generate";
            var body = new JsonObject
            {
                ["input_ids"] = Ints(ids),
                ["sampling_params"] = new JsonObject { ["max_new_tokens"] = 1, ["temperature"] = 0.0 },
                ["return_logprob"] = true,
                ["logprob_start_len"] = 0,
            };
            if (Adapter is not null) body["lora_path"] = Adapter;
            var answer = Post(url, body).GetAwaiter().GetResult();
            var one = answer is JsonArray a ? a.FirstOrDefault() : answer;
            var lps = one?["meta_info"]?["input_token_logprobs"] as JsonArray ?? throw Shape(url, "meta_info.input_token_logprobs is missing");
            return PromptValues(lps.Select(x => x is JsonArray t ? t.FirstOrDefault() : null).ToList(), ids.Length, url);
        }
        else
        {
            if (Adapter is null) EnsureModel().GetAwaiter().GetResult();
            var url = _o.Url + "/v1/completions";
            var body = new JsonObject
            {
                ["prompt"] = Ints(ids), ["max_tokens"] = 1, ["temperature"] = 1.0, ["echo"] = true, ["logprobs"] = 1,
                ["return_tokens_as_token_ids"] = true,
            };
            if ((Adapter ?? _model) is { } model) body["model"] = model;
            var answer = Post(url, body).GetAwaiter().GetResult();
            var lps = answer["choices"]?[0]?["logprobs"]?["token_logprobs"] as JsonArray ?? throw Shape(url, "choices[0].logprobs.token_logprobs is missing");
            return PromptValues(lps.ToList(), ids.Length, url);
        }
    }

    static float[] PromptValues(List<JsonNode?> values, int promptLength, string url)
    {
        if (values.Count < promptLength) throw Shape(url, $"{values.Count} prompt log-probs for a prompt of {promptLength} tokens");
        var result = new float[promptLength - 1];
        for (int t = 1; t < promptLength; t++)
            result[t - 1] = values[t] is JsonValue v && v.TryGetValue<double>(out var d) ? (float)d : throw Shape(url, $"prompt log-prob {t} is not a number");
        return result;
    }

    // ------------------------------------------------------------------ transport

    Task<JsonNode> Post(string url, JsonObject body, bool textIsSuccess = false)
    {
        var text = body.ToJsonString();
        return Send(() => new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(text, Encoding.UTF8, "application/json") }, url,
            textIsSuccess: textIsSuccess);
    }

    /// <summary>One request with bounded concurrency, a timeout, and retries with exponential backoff on
    /// connection errors, timeouts, 429 (honouring Retry-After) and 5xx. With <paramref name="textIsSuccess"/>, a 2xx
    /// answer that is not JSON (vLLM's adapter routes answer plain text) comes back as <c>{"message": text}</c>.</summary>
    async Task<JsonNode> Send(Func<HttpRequestMessage> make, string url, bool emptyIsSuccess = false, bool textIsSuccess = false)
    {
        await _slots.WaitAsync();
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                string failure;
                TimeSpan? wait = null;
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(_o.TimeoutSeconds));
                try
                {
                    using var response = await _http.SendAsync(make(), cts.Token);
                    var text = await response.Content.ReadAsStringAsync(cts.Token);
                    int status = (int)response.StatusCode;
                    if (response.IsSuccessStatusCode)
                    {
                        if (emptyIsSuccess && string.IsNullOrWhiteSpace(text)) return new JsonObject();
                        try { return JsonNode.Parse(text) ?? throw new RolloutServerException($"{url}: the answer is JSON null"); }
                        catch (System.Text.Json.JsonException) when (textIsSuccess) { return new JsonObject { ["message"] = text }; }
                        catch (System.Text.Json.JsonException e) { throw new RolloutServerException($"{url}: the answer is not JSON: {e.Message}: {Clip(text)}"); }
                    }
                    failure = $"HTTP {status}: {Clip(text)}";
                    if (status != 429 && status < 500) throw new RolloutServerException($"{url}: {failure}");
                    if (response.Headers.RetryAfter?.Delta is { } delta) wait = delta;
                }
                catch (HttpRequestException e) { failure = $"cannot reach the server: {e.Message}"; }
                catch (OperationCanceledException) when (cts.IsCancellationRequested) { failure = $"no answer within {_o.TimeoutSeconds} s"; }
                if (attempt >= _o.Retries)
                    throw new RolloutServerException($"{url}: {failure} (after {attempt + 1} attempt{(attempt == 0 ? "" : "s")})");
                await Task.Delay(wait ?? TimeSpan.FromSeconds(_o.BackoffSeconds * System.Math.Pow(2, attempt)));
            }
        }
        finally { _slots.Release(); }
    }

    static string Clip(string s) => s.Length <= 300 ? s : s[..300] + "…";
}
