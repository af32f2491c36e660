// The llama.cpp side of `simko bench --only decode` (issue 19 §3). Reads a request (JSON, the path
// as the one argument), decodes with llama.cpp's own CPU libraries (LLamaSharp.Backend.Cpu, through
// LLamaSharp's thin native bindings). Protocol (one JSON object per line on stdout):
//   request: {"gguf": path, "threads": 2, "new_tokens": 128, "prompts": [[ids], …] (batch B decodes the
//             first B), "check_prompt": [ids], "check_tokens": 16}
//   first line: {"check_logits": [V floats: the check prompt's next-token logits], "check_greedy_tokens":
//             [check_tokens greedy ids], "vocab": V, "system_info": llama.cpp's feature line, "threads": n}
//   then for each line "<B>" or "<B> <threads>" read from stdin: {"b": B, "threads": n, "seconds": s}, one timed
//   run (threads: the request's unless given).
// A timed run of batch B, as the bench times its own engines: B sequences (sequence i = prompts[i], its
// own seq id) prefilled in one llama_decode, then one token per sequence per llama_decode until each has
// new_tokens, every token drawn by llama.cpp's sampler chain (temperature 1, then dist with the
// sequence's seed: the full-vocabulary softmax sampling the bench's engines do). Context creation
// (once per B) is outside the timing.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LLama.Native;

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: LlamaCppBaseline <request.json>");
    return 2;
}
var request = JsonNode.Parse(File.ReadAllText(args[0]))!.AsObject();
T Need<T>(string field) => request[field] is { } v ? v.GetValue<T>() : throw new ArgumentException($"{args[0]}: field '{field}' is missing");
int[][] Ids(JsonNode? n, string field) => n is JsonArray a ? a.Select(p => p!.AsArray().Select(x => x!.GetValue<int>()).ToArray()).ToArray()
    : throw new ArgumentException($"{args[0]}: field '{field}' must be an array of token-id arrays");

string gguf = Need<string>("gguf");
int threads = Need<int>("threads"), newTokens = Need<int>("new_tokens"), checkTokens = Need<int>("check_tokens");
var prompts = Ids(request["prompts"], "prompts");
var checkPrompt = request["check_prompt"] is JsonArray cp ? cp.Select(x => x!.GetValue<int>()).ToArray()
    : throw new ArgumentException($"{args[0]}: field 'check_prompt' must be an array of token ids");
if (prompts.Length == 0 || prompts.Any(x => x.Length == 0) || checkPrompt.Length == 0 || newTokens < 1 || checkTokens < 1)
    throw new ArgumentException($"{args[0]}: expected non-empty prompts and check_prompt, new_tokens and check_tokens >= 1");

// LLamaSharp picks the native library matching the CPU (noavx/avx/avx2/avx512) on first use of NativeApi
NativeLibraryConfig.All.WithLogCallback((level, message) => { if (level >= LLamaLogLevel.Error) Console.Error.Write(message); });
var systemInfo = System.Runtime.InteropServices.Marshal.PtrToStringUTF8(NativeApi.llama_print_system_info()) ?? "";
var modelParams = LLamaModelParams.Default();
modelParams.n_gpu_layers = 0;
using var model = SafeLlamaModelHandle.LoadFromFile(gguf, modelParams);
int vocab = model.Vocab.Count;
var answer = new JsonObject { ["system_info"] = systemInfo, ["threads"] = threads, ["vocab"] = vocab };

SafeLLamaContextHandle Context(int sequences, int tokensPerSequence, int batchTokens)
{
    var p = LLamaContextParams.Default();
    p.n_ctx = (uint)(sequences * tokensPerSequence);
    p.n_batch = p.n_ubatch = (uint)System.Math.Max(batchTokens, sequences);
    p.n_seq_max = (uint)sequences;
    p.n_threads = p.n_threads_batch = threads;
    // the f32 model the bench's engines compute: keys and values kept in f32 (llama.cpp's default cache is f16) and
    // no flash attention (on by default here; its CPU kernel rounds through f16: the bench's check then sees next-token
    // logits 1.5e-3 apart, against 1.4e-6 without it)
    p.type_k = p.type_v = GGMLType.GGML_TYPE_F32;
    p.llama_flash_attn_type = LLamaFlashAttentionType.LLAMA_FLASH_ATTENTION_TYPE_DISABLED;
    return SafeLLamaContextHandle.Create(model, p);
}

static void Decode(SafeLLamaContextHandle ctx, LLamaBatch batch)
{
    var r = ctx.Decode(batch);
    if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode: {r}");
}

// the equality check: next-token logits of the check prompt, then greedy tokens
using (var ctx = Context(1, checkPrompt.Length + checkTokens, checkPrompt.Length))
{
    var batch = new LLamaBatch();
    for (int j = 0; j < checkPrompt.Length; j++) batch.Add(checkPrompt[j], j, LLamaSeqId.Zero, j == checkPrompt.Length - 1);
    Decode(ctx, batch);
    answer["check_logits"] = new JsonArray(ctx.GetLogitsIth(checkPrompt.Length - 1).ToArray().Select(x => (JsonNode?)JsonValue.Create(x)).ToArray());
    using var greedy = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
    greedy.AddGreedySampler();
    var tokens = new List<int>();
    int index = checkPrompt.Length - 1, pos = checkPrompt.Length;
    for (int s = 0; s < checkTokens; s++)
    {
        var t = greedy.Sample(ctx, index);
        tokens.Add((int)t);
        if (s == checkTokens - 1) break;
        batch.Clear();
        batch.Add(t, pos++, LLamaSeqId.Zero, true);
        Decode(ctx, batch);
        index = 0;
    }
    answer["check_greedy_tokens"] = new JsonArray(tokens.Select(t => (JsonNode?)t).ToArray());
}

// then one timed run per line read: "<B>" answers {"b": B, "seconds": s} (the bench alternates these
// with its own engines' runs, so both see the same machine load); end of input ends the program
Console.WriteLine(answer.ToJsonString());
var contexts = new Dictionary<int, SafeLLamaContextHandle>();
string? line;
while ((line = Console.ReadLine()) is not null)
{
    if (line.Trim().Length == 0) continue;
    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
    int b = 0, n = threads;
    if (parts.Length > 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out b) || b < 1 || b > prompts.Length
        || (parts.Length == 2 && (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out n) || n < 1)))
    {
        Console.WriteLine(new JsonObject { ["error"] = $"expected '<batch size in 1..{prompts.Length}> [threads >= 1]', got '{line.Trim()}'" }.ToJsonString());
        continue;
    }
    if (!contexts.TryGetValue(b, out var ctx))
        contexts[b] = ctx = Context(b, prompts.Take(b).Max(x => x.Length) + newTokens, prompts.Take(b).Sum(x => x.Length));
    ctx.GenerationThreads = n;
    ctx.BatchThreads = n;
    Console.WriteLine(new JsonObject { ["b"] = b, ["threads"] = n, ["seconds"] = Run(ctx, b) }.ToJsonString());
}
foreach (var c in contexts.Values) c.Dispose();
return 0;

double Run(SafeLLamaContextHandle ctx, int b)
{
    ctx.MemoryClear(true);
    var chains = Enumerable.Range(0, b).Select(i =>
    {
        var c = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        c.AddTemperature(1f);
        c.AddDistributionSampler((uint)(5 + i));
        return c;
    }).ToArray();
    var sw = Stopwatch.StartNew();
    var batch = new LLamaBatch();
    var index = new int[b];
    var next = new LLamaToken[b];
    for (int i = 0; i < b; i++)
        for (int j = 0; j < prompts[i].Length; j++)
        {
            bool last = j == prompts[i].Length - 1;
            int k = batch.Add(prompts[i][j], j, (LLamaSeqId)i, last);
            if (last) index[i] = k;
        }
    Decode(ctx, batch);
    long produced = 0;
    for (int step = 0; ; step++)
    {
        for (int i = 0; i < b; i++) next[i] = chains[i].Sample(ctx, index[i]);
        produced += b;
        if (step == newTokens - 1) break;
        batch.Clear();
        for (int i = 0; i < b; i++) index[i] = batch.Add(next[i], prompts[i].Length + step, (LLamaSeqId)i, true);
        Decode(ctx, batch);
    }
    double seconds = sw.Elapsed.TotalSeconds;
    foreach (var c in chains) c.Dispose();
    if (produced != (long)b * newTokens) throw new InvalidOperationException($"{produced} tokens for {b} × {newTokens}");
    return seconds;
}
